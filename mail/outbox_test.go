package mail_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/mail"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

func TestOutbox_MailsAreWrittenAsReadableEMLFilesInSendingOrder(t *testing.T) {
	ctx := context.Background()
	store := dbtest.OpenMigrated(t, dbtest.Backends(t)[0])
	dir := filepath.Join(t.TempDir(), "outbox")
	outbox, err := mail.NewOutboxTransport(dir, testFrom)
	if err != nil {
		t.Fatal(err)
	}
	if outbox.Dir() != dir {
		t.Fatalf("Dir() = %q, want %q", outbox.Dir(), dir)
	}
	b := newQueue(t, store, outbox, mail.Config{})

	first := invitation("ada@example.com")
	second := mail.Message{To: "bob@example.com", Subject: "Reset your password", Text: "Reset: " + resetLink, Kind: "password_reset"}
	for _, m := range []mail.Message{first, second} {
		if err := b.queue.Enqueue(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	b.run(t)
	var names []string
	waitFor(t, "two mails in the outbox", func() bool {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		names = names[:0]
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return len(names) == 2 && strings.HasSuffix(names[0], ".eml") && strings.HasSuffix(names[1], ".eml")
	})

	if !slices.IsSorted(names) || !strings.Contains(names[0], "-invitation-") || !strings.Contains(names[1], "-password_reset-") {
		t.Fatalf("outbox files %v: want the invitation first, then the reset, named by time and kind", names)
	}
	for i, want := range []mail.Message{first, second} {
		path := filepath.Join(dir, names[i])
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if mode := info.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600: it holds the body in clear", names[i], mode)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The file is read as it is (or searched with grep): a link stays
		// whole on its line, with no quoted-printable escapes or breaks.
		if want.Kind == "password_reset" && !strings.Contains(string(raw), "Reset: "+resetLink) {
			t.Errorf("%s does not hold the link %s whole on its line:\n%s", names[i], resetLink, raw)
		}
		got := parseMail(t, raw)
		if to := got.Header.Get("To"); !strings.Contains(to, want.To) {
			t.Errorf("%s: To = %q, want %s", names[i], to, want.To)
		}
		if got.Parts["text/plain"] != want.Text {
			t.Errorf("%s: text part = %q, want %q", names[i], got.Parts["text/plain"], want.Text)
		}
		if want.HTML != "" && got.Parts["text/html"] != want.HTML {
			t.Errorf("%s: HTML part = %q, want %q", names[i], got.Parts["text/html"], want.HTML)
		}
	}

	var rows []models.Mail
	if err := store.DB().Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both mails recorded sent", func() bool {
		for _, r := range rows {
			if ok := mailInState(t, store, r.ID, models.MailSent)(); !ok {
				return false
			}
		}
		return true
	})
}
