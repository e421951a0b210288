package mail

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// OutboxTransport writes each mail as an RFC 5322 .eml file into a folder
// instead of sending it: the transport used when no SMTP server is
// configured, so that a demo or a development node shows what it would
// have sent. File names start with the UTC time the mail was written, so
// they sort in the order mails went out, followed by the mail's kind.
type OutboxTransport struct {
	dir  string
	from string
}

// NewOutboxTransport returns a transport writing into dir, which it
// creates (mode 0700) if needed, with from as every mail's sender.
func NewOutboxTransport(dir, from string) (*OutboxTransport, error) {
	if err := checkFrom(from); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create mail outbox: %w", err)
	}
	return &OutboxTransport{dir: dir, from: from}, nil
}

// Dir is the folder mails are written to.
func (t *OutboxTransport) Dir() string { return t.dir }

// String names the outbox, for logs.
func (t *OutboxTransport) String() string { return "outbox " + t.dir }

// Send writes one mail as <time>-<kind>-<id>.eml, readable by its owner
// only, since it carries the body in clear. The file appears whole or not
// at all: it is written under a hidden name and renamed.
func (t *OutboxTransport) Send(ctx context.Context, id string, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// 8bit keeps each link whole on its line, so a person (or grep) reads
	// the file as it is.
	msg, err := compose(t.from, id, m, gomail.NoEncoding)
	if err != nil {
		return err
	}
	name := time.Now().UTC().Format("20060102T150405.000000000Z") + "-" + fileSafe(m.Kind) + "-" + fileSafe(id) + ".eml"
	final := filepath.Join(t.dir, name)
	tmp := filepath.Join(t.dir, "."+name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write to the outbox: %w", err)
	}
	_, werr := msg.WriteTo(f)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, final)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write to the outbox: %w", werr)
	}
	return nil
}

// fileSafe keeps letters, digits, '-' and '_', so a name part can never
// leave the outbox folder.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}
