package mail_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/mail"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

const testFrom = "panelsync <no-reply@panelsync.test>"

// resetLink stands for the single-use secret a real mail carries: it must
// reach the recipient and nothing else.
const resetLink = "https://panelsync.test/reset?token=psr_SECRET-7c1f9a"

func testSealer(t *testing.T) *auth.Sealer {
	t.Helper()
	s, err := auth.NewSealer(auth.KeyEntry{Secret: bytes.Repeat([]byte("k"), 32)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// logRecords parses JSON log output into its records.
func logRecords(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// queueBundle is a queue under test and what it was built with.
type queueBundle struct {
	store *models.Store
	queue *mail.Queue
	logs  *apptest.Buffer
}

// newQueue builds a queue with fast retries; cfg's zero fields take the
// test defaults.
func newQueue(t *testing.T, store *models.Store, transport mail.Transport, cfg mail.Config) queueBundle {
	t.Helper()
	logs := &apptest.Buffer{}
	cfg.Transport = transport
	cfg.Sealer = testSealer(t)
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Owner == "" {
		cfg.Owner = "node-test"
	}
	if cfg.RetryBase == 0 {
		cfg.RetryBase = 5 * time.Millisecond
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = 20 * time.Millisecond
	}
	if cfg.Poll == 0 {
		cfg.Poll = 10 * time.Millisecond
	}
	if cfg.SendTimeout == 0 {
		cfg.SendTimeout = 10 * time.Second
	}
	return queueBundle{store: store, queue: mail.NewQueue(cfg, store), logs: logs}
}

// run starts the queue's sender until the test ends, and returns a stop
// function that cancels it and waits for it to return.
func (b queueBundle) run(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.queue.Run(ctx)
	}()
	stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

func smtpTransport(t *testing.T, rawURL string) *mail.SMTPTransport {
	t.Helper()
	tr, err := mail.NewSMTPTransport(rawURL, testFrom)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// waitFor polls cond until it holds, failing the test after 20 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// onlyMail returns the one mail row, failing unless there is exactly one.
func onlyMail(t *testing.T, store *models.Store) models.Mail {
	t.Helper()
	var rows []models.Mail
	if err := store.DB().Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d mails in the queue, want 1", len(rows))
	}
	return rows[0]
}

func mailInState(t *testing.T, store *models.Store, id string, state models.MailState) func() bool {
	return func() bool {
		m, err := store.MailByID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return m.State == state
	}
}

// rawMailRows returns every column of every mails row as text, the way
// someone reading the database directly would see it.
func rawMailRows(t *testing.T, store *models.Store) string {
	t.Helper()
	rows, err := store.DB().Raw("SELECT * FROM mails").Rows()
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			out.Write(v)
			out.WriteByte('|')
		}
		out.WriteByte('\n')
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func invitation(to string) mail.Message {
	return mail.Message{
		To:      to,
		Subject: "Einladung für Demo Security Co.",
		Text:    "You are invited. Open " + resetLink,
		HTML:    `<p>You are invited. <a href="` + resetLink + `">Open</a></p>`,
		Kind:    "invitation",
	}
}

func TestQueue_MailOfARolledBackTransaction_IsNeverSent(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		server := startServer(t, serverOptions{})
		b := newQueue(t, store, smtpTransport(t, "smtp://"+server.Addr), mail.Config{})
		b.run(t)

		errChangeFailed := errors.New("the invitation could not be saved")
		err := store.Tx(ctx, func(ctx context.Context) error {
			if err := b.queue.Enqueue(ctx, invitation("rolled-back@example.com")); err != nil {
				return err
			}
			return errChangeFailed
		})
		if !errors.Is(err, errChangeFailed) {
			t.Fatalf("Tx = %v", err)
		}
		// A mail committed after it goes out only once the sender has
		// looked at the queue, so by then the first one would have too.
		if err := b.queue.Enqueue(ctx, invitation("committed@example.com")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the committed mail to arrive", func() bool { return len(server.Received()) >= 1 })

		got := server.Received()
		if len(got) != 1 || got[0].To[0] != "committed@example.com" {
			t.Fatalf("server received mail for %v, want only committed@example.com", envelopeRecipients(got))
		}
		if m := onlyMail(t, store); m.Recipient != "committed@example.com" {
			t.Fatalf("the queue holds a mail for %s", m.Recipient)
		}
	})
}

func TestQueue_CommittedMail_ArrivesWithItsHeadersAndBothParts(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		server := startServer(t, serverOptions{user: "mailer", pass: "s3cret pass"})
		b := newQueue(t, store, smtpTransport(t, "smtp://mailer:s3cret%20pass@"+server.Addr), mail.Config{})
		b.run(t)

		msg := invitation("Ada Lovelace <ada@example.com>")
		err := store.Tx(ctx, func(ctx context.Context) error { return b.queue.Enqueue(ctx, msg) })
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the mail to arrive", func() bool { return len(server.Received()) == 1 })

		r := server.Received()[0]
		if r.User != "mailer" {
			t.Errorf("the transport did not sign in: user %q", r.User)
		}
		if r.From != "no-reply@panelsync.test" || len(r.To) != 1 || r.To[0] != "ada@example.com" {
			t.Errorf("envelope from %q to %v", r.From, r.To)
		}
		got := parseMail(t, r.Data)
		subject, err := new(mime.WordDecoder).DecodeHeader(got.Header.Get("Subject"))
		if err != nil || subject != msg.Subject {
			t.Errorf("Subject = %q (%v), want %q", subject, err, msg.Subject)
		}
		if to := got.Header.Get("To"); !strings.Contains(to, "<ada@example.com>") || !strings.Contains(to, "Ada Lovelace") {
			t.Errorf("To = %q", to)
		}
		if from := got.Header.Get("From"); !strings.Contains(from, "<no-reply@panelsync.test>") {
			t.Errorf("From = %q", from)
		}
		if kind := got.Header.Get("X-Panelsync-Kind"); kind != "invitation" {
			t.Errorf("X-Panelsync-Kind = %q", kind)
		}
		if got.Parts["text/plain"] != msg.Text {
			t.Errorf("text part = %q, want %q", got.Parts["text/plain"], msg.Text)
		}
		if got.Parts["text/html"] != msg.HTML {
			t.Errorf("HTML part = %q, want %q", got.Parts["text/html"], msg.HTML)
		}

		row := onlyMail(t, store)
		waitFor(t, "the mail to be recorded sent", mailInState(t, store, row.ID, models.MailSent))
		if id := got.Header.Get("Message-Id"); !strings.Contains(id, row.ID) {
			t.Errorf("Message-ID %q does not carry the mail's id %s", id, row.ID)
		}
		row = onlyMail(t, store)
		if row.Attempts != 1 || row.SentAt == nil {
			t.Errorf("sent mail: %d attempts, sent at %v", row.Attempts, row.SentAt)
		}
		if strings.Contains(b.logs.String(), "psr_SECRET") {
			t.Error("the log shows the mail's body")
		}
	})
}

func TestQueue_SealedBody_IsUnreadableInTheDatabaseAndWipedOnceSent(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		server := startServer(t, serverOptions{})
		b := newQueue(t, store, smtpTransport(t, "smtp://"+server.Addr), mail.Config{})

		// The sender is not running yet, so the row is read as queued.
		if err := b.queue.Enqueue(ctx, invitation("ada@example.com")); err != nil {
			t.Fatal(err)
		}
		raw := rawMailRows(t, store)
		if !strings.Contains(raw, "ada@example.com") {
			t.Fatalf("raw row does not show the recipient, so the check below proves nothing: %s", raw)
		}
		for _, secret := range []string{"psr_SECRET", "You are invited", "<a href"} {
			if strings.Contains(raw, secret) {
				t.Fatalf("the queued row shows %q in clear: %s", secret, raw)
			}
		}
		if onlyMail(t, store).SealedBody == "" {
			t.Fatal("the queued mail has no sealed body")
		}

		b.run(t)
		row := onlyMail(t, store)
		waitFor(t, "the mail to be sent", mailInState(t, store, row.ID, models.MailSent))
		if !strings.Contains(parseMail(t, server.Received()[0].Data).Parts["text/plain"], resetLink) {
			t.Fatal("the recipient did not get the link")
		}
		if sent := onlyMail(t, store); sent.SealedBody != "" {
			t.Fatalf("the sent mail still holds its sealed body (%d bytes)", len(sent.SealedBody))
		}
	})
}

func TestQueue_ServerRefuses451_RetriesAndDeliversOnce(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		server := startServer(t, serverOptions{})
		server.setOnData(func(n int) error {
			if n <= 2 {
				return tempFailure()
			}
			return nil
		})
		b := newQueue(t, store, smtpTransport(t, "smtp://"+server.Addr), mail.Config{})
		b.run(t)

		if err := b.queue.Enqueue(ctx, invitation("ada@example.com")); err != nil {
			t.Fatal(err)
		}
		row := onlyMail(t, store)
		waitFor(t, "the mail to be sent", mailInState(t, store, row.ID, models.MailSent))

		if got := len(server.Received()); got != 1 {
			t.Fatalf("the server accepted %d copies, want 1", got)
		}
		if calls := server.DataCalls(); calls != 3 {
			t.Fatalf("the server saw %d delivery attempts, want 3", calls)
		}
		if sent := onlyMail(t, store); sent.Attempts != 3 {
			t.Fatalf("the mail records %d attempts, want 3", sent.Attempts)
		}
	})
}

func TestQueue_UnreachableServer_RetriesThenFailsWithAWarning(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		// A port that was free a moment ago refuses connections.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		b := newQueue(t, store, smtpTransport(t, "smtp://"+addr), mail.Config{MaxAttempts: 4})
		b.run(t)

		if err := b.queue.Enqueue(ctx, invitation("ada@example.com")); err != nil {
			t.Fatal(err)
		}
		row := onlyMail(t, store)
		waitFor(t, "the mail to fail", mailInState(t, store, row.ID, models.MailFailed))

		failed := onlyMail(t, store)
		if failed.Attempts != 4 {
			t.Errorf("failed after %d attempts, want 4", failed.Attempts)
		}
		if failed.LastError == "" || failed.SealedBody != "" || failed.FailedAt == nil {
			t.Errorf("failed mail: error %q, body kept %v, failed at %v", failed.LastError, failed.SealedBody != "", failed.FailedAt)
		}
		if strings.Contains(failed.LastError, "psr_SECRET") {
			t.Errorf("the recorded error shows the body: %s", failed.LastError)
		}

		// The warning is logged once the failure is recorded, so it may
		// follow the state change by a moment.
		waitFor(t, "a WARN line naming the recipient and the error", func() bool {
			for _, rec := range logRecords(t, b.logs.String()) {
				if rec["level"] == "WARN" && rec["recipient"] == "ada@example.com" && rec["error"] != nil && rec["mail_id"] == row.ID {
					return true
				}
			}
			return false
		})
		if strings.Contains(b.logs.String(), "psr_SECRET") || strings.Contains(b.logs.String(), "You are invited") {
			t.Error("the log shows the mail's body")
		}
	})
}

func TestQueue_RecipientRefusedForGood_FailsWithoutRetrying(t *testing.T) {
	ctx := context.Background()
	store := dbtest.OpenMigrated(t, dbtest.Backends(t)[0])
	server := startServer(t, serverOptions{})
	server.setOnRcpt(func(string) error { return unknownUser() })
	b := newQueue(t, store, smtpTransport(t, "smtp://"+server.Addr), mail.Config{})
	b.run(t)

	if err := b.queue.Enqueue(ctx, invitation("nobody@example.com")); err != nil {
		t.Fatal(err)
	}
	row := onlyMail(t, store)
	waitFor(t, "the mail to fail", mailInState(t, store, row.ID, models.MailFailed))
	if failed := onlyMail(t, store); failed.Attempts != 1 || !strings.Contains(failed.LastError, "550") {
		t.Fatalf("refused mail: %d attempts, error %q; want 1 attempt and the server's 550", failed.Attempts, failed.LastError)
	}
}

func TestQueue_MailQueuedOnAnotherNode_IsFoundByPolling(t *testing.T) {
	ctx := context.Background()
	store := dbtest.OpenMigrated(t, dbtest.Backends(t)[0])
	server := startServer(t, serverOptions{})
	transport := smtpTransport(t, "smtp://"+server.Addr)
	// The node that queues the mail runs no sender; only polling can
	// bring the mail to the other node's.
	enqueuer := newQueue(t, store, transport, mail.Config{Owner: "node-a"})
	sender := newQueue(t, store, transport, mail.Config{Owner: "node-b", Poll: 20 * time.Millisecond})
	sender.run(t)

	if err := enqueuer.queue.Enqueue(ctx, invitation("ada@example.com")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the other node to send the mail", func() bool { return len(server.Received()) == 1 })
}

func TestQueue_StoppingMidSend_HandsTheMailBackUncounted(t *testing.T) {
	ctx := context.Background()
	store := dbtest.OpenMigrated(t, dbtest.Backends(t)[0])
	server := startServer(t, serverOptions{})
	unblock := make(chan struct{})
	t.Cleanup(func() { close(unblock) })
	server.setOnData(func(int) error {
		<-unblock
		return tempFailure()
	})
	b := newQueue(t, store, smtpTransport(t, "smtp://"+server.Addr), mail.Config{})
	stop := b.run(t)

	if err := b.queue.Enqueue(ctx, invitation("ada@example.com")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server to be sent the message", func() bool { return server.DataCalls() == 1 })
	stop()

	m := onlyMail(t, store)
	if m.State != models.MailQueued || m.Attempts != 0 || m.LeaseOwner != "" || m.SealedBody == "" {
		t.Fatalf("after stopping: state %s, %d attempts, owner %q, body kept %v; want queued, 0, none, kept",
			m.State, m.Attempts, m.LeaseOwner, m.SealedBody != "")
	}
	if m.NextAttemptAt.After(time.Now().UTC()) {
		t.Fatalf("the mail is only due at %v: another node would wait for it", m.NextAttemptAt)
	}
}

func TestEnqueue_InvalidMessages_AreRefusedAndNothingIsQueued(t *testing.T) {
	ctx := context.Background()
	store := dbtest.OpenMigrated(t, dbtest.Backends(t)[0])
	b := newQueue(t, store, nil, mail.Config{})
	valid := invitation("ada@example.com")
	with := func(f func(*mail.Message)) mail.Message {
		m := valid
		f(&m)
		return m
	}
	cases := []struct {
		name  string
		msg   mail.Message
		field string
	}{
		{"header injection in the recipient", with(func(m *mail.Message) { m.To = "ada@example.com\r\nBcc: all@example.com" }), "to"},
		{"header injection in the subject", with(func(m *mail.Message) { m.Subject = "Hello\r\nBcc: all@example.com" }), "subject"},
		{"bare line feed in the subject", with(func(m *mail.Message) { m.Subject = "Hello\nthere" }), "subject"},
		{"not an address", with(func(m *mail.Message) { m.To = "ada at example" }), "to"},
		{"two addresses", with(func(m *mail.Message) { m.To = "ada@example.com, bob@example.com" }), "to"},
		{"no recipient", with(func(m *mail.Message) { m.To = " " }), "to"},
		{"no subject", with(func(m *mail.Message) { m.Subject = "" }), "subject"},
		{"no body", with(func(m *mail.Message) { m.Text, m.HTML = "", "" }), "text"},
		{"no kind", with(func(m *mail.Message) { m.Kind = "" }), "kind"},
		{"kind with a path", with(func(m *mail.Message) { m.Kind = "../etc" }), "kind"},
		{"oversized body", with(func(m *mail.Message) { m.Text = strings.Repeat("x", mail.MaxBodyBytes+1) }), "text"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := b.queue.Enqueue(ctx, c.msg)
			var me *models.Error
			if !errors.As(err, &me) || me.Code != models.CodeInvalidRequest || me.Field != c.field {
				t.Fatalf("Enqueue = %v, want invalid_request on %q", err, c.field)
			}
			if strings.Contains(err.Error(), "psr_SECRET") {
				t.Fatalf("the error shows the body: %v", err)
			}
		})
	}
	var n int64
	if err := store.DB().Model(&models.Mail{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d refused mails were queued", n)
	}
}

func envelopeRecipients(rs []received) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.To...)
	}
	return out
}
