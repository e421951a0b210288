package handlers_test

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app/apptest"
)

// receivedMail is one mail from the node's outbox, decoded as a mail
// client would show it.
type receivedMail struct {
	to, subject, text, html string
}

// link returns the single-use token of the mail's link.
func (m receivedMail) token(t *testing.T) string {
	t.Helper()
	match := regexp.MustCompile(`#token=(ps[a-z]_[A-Za-z0-9_-]+)`).FindStringSubmatch(m.text)
	if match == nil {
		t.Fatalf("no link with a token in the mail %q:\n%s", m.subject, m.text)
	}
	return match[1]
}

// mails returns every mail in the node's outbox to the address, oldest
// first.
func (tb *testBundle) mails(t *testing.T, to string) []receivedMail {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(tb.dataDir, "outbox", "*.eml"))
	slices.Sort(files)
	var out []receivedMail
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := parseMail(t, raw)
		if strings.Contains(m.to, to) {
			out = append(out, m)
		}
	}
	return out
}

// waitMail waits until the outbox holds n mails to the address and
// returns the newest.
func (tb *testBundle) waitMail(t *testing.T, to string, n int) receivedMail {
	t.Helper()
	var got []receivedMail
	apptest.Eventually(t, 15*time.Second, func() (bool, string) {
		got = tb.mails(t, to)
		return len(got) >= n, "mails to " + to + " in the outbox: " + strconv.Itoa(len(got))
	})
	return got[len(got)-1]
}

func parseMail(t *testing.T, raw []byte) receivedMail {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("outbox file is not a mail: %v", err)
	}
	dec := new(mime.WordDecoder)
	subject, _ := dec.DecodeHeader(msg.Header.Get("Subject"))
	out := receivedMail{to: msg.Header.Get("To"), subject: subject}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("content type: %v", err)
	}
	if !strings.HasPrefix(mediaType, "multipart/") {
		out.text = decodePart(t, msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
		return out
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("mail part: %v", err)
		}
		body := decodePart(t, p.Header.Get("Content-Transfer-Encoding"), p)
		switch ct := p.Header.Get("Content-Type"); {
		case strings.HasPrefix(ct, "text/plain"):
			out.text = body
		case strings.HasPrefix(ct, "text/html"):
			out.html = body
		}
	}
	return out
}

func decodePart(t *testing.T, encoding string, r io.Reader) string {
	t.Helper()
	if strings.EqualFold(encoding, "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read mail body: %v", err)
	}
	return string(b)
}
