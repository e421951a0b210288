// Package mail sends outgoing mail: invitations, password resets and sync
// reports. A mail is queued in the database in the transaction of the
// change that caused it, and delivered in the background by a sender that
// runs on every node, through SMTP or, with no server configured, into an
// outbox folder. Bodies carry single-use links: they are sealed at rest,
// wiped once the mail is sent, and never logged or returned in an error.
package mail

import (
	"context"
	"errors"
	"fmt"
	netmail "net/mail"
	"strings"
	"unicode/utf8"

	"github.com/panelsync/panelsync/models"
)

// Message is one mail to send.
type Message struct {
	// To is the recipient, a bare address or "Name <address>".
	To      string
	Subject string
	// Text and HTML are the plain and HTML versions of one body; a mail
	// with both is sent as multipart/alternative. At least one is needed.
	Text string
	HTML string
	// Kind says what the mail is for, such as "invitation",
	// "password_reset" or "report": lower-case letters, digits and
	// underscores.
	Kind string
	// AccountID is the account the mail concerns, empty for mail to the
	// operator.
	AccountID string
}

// Transport delivers one mail. id is the mail's queue id, unique and
// stable across attempts, for the Message-ID. An error that wraps
// ErrRejected means the mail can never be delivered as it is; any other
// error is retried later.
type Transport interface {
	Send(ctx context.Context, id string, m Message) error
}

// ErrRejected marks a mail the server refused for good, such as an
// unknown recipient (a 5xx reply to RCPT TO or to the message): it is
// marked failed at once instead of being retried.
var ErrRejected = errors.New("mail rejected by the server")

// Sealer encrypts mail bodies for storage; *auth.Sealer is one.
type Sealer interface {
	Seal(plaintext []byte) (string, error)
	Open(sealed string) ([]byte, error)
}

// Limits of what Enqueue accepts. The subject and recipient limits are
// the columns' sizes; the body limit keeps one mail from filling the
// queue.
const (
	MaxSubjectRunes  = 500
	MaxRecipientLen  = 320
	MaxKindLen       = 32
	MaxBodyBytes     = 1 << 20
	maxAccountIDSize = 36
)

// validate checks a message before it is queued, and returns it with the
// subject and recipient trimmed. Header values are refused if they hold a
// line break, which would let a caller's input add headers to the mail.
func validate(m Message) (Message, error) {
	m.To = strings.TrimSpace(m.To)
	if strings.ContainsAny(m.To, "\r\n") {
		return m, models.FieldError("to", "to must not contain line breaks")
	}
	if m.To == "" {
		return m, models.FieldError("to", "to must not be empty")
	}
	if len(m.To) > MaxRecipientLen {
		return m, models.FieldError("to", "to must be at most %d bytes", MaxRecipientLen)
	}
	if _, err := netmail.ParseAddress(m.To); err != nil {
		return m, models.FieldError("to", "to is not a valid e-mail address")
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return m, models.FieldError("subject", "subject must not contain line breaks")
	}
	subject, err := models.Label("subject", m.Subject, MaxSubjectRunes, true)
	if err != nil {
		return m, err
	}
	m.Subject = subject
	if !validKind(m.Kind) {
		return m, models.FieldError("kind", "kind must be 1 to %d lower-case letters, digits or underscores", MaxKindLen)
	}
	if len(m.AccountID) > maxAccountIDSize {
		return m, models.FieldError("account_id", "account_id must be at most %d bytes", maxAccountIDSize)
	}
	if m.Text == "" && m.HTML == "" {
		return m, models.FieldError("text", "a mail needs a text or an HTML body")
	}
	if !utf8.ValidString(m.Text) || !utf8.ValidString(m.HTML) {
		return m, models.FieldError("text", "the body must be valid UTF-8")
	}
	if len(m.Text)+len(m.HTML) > MaxBodyBytes {
		return m, models.FieldError("text", "the body must be at most %d bytes, text and HTML together", MaxBodyBytes)
	}
	return m, nil
}

func validKind(k string) bool {
	if k == "" || len(k) > MaxKindLen {
		return false
	}
	for _, r := range k {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}

// checkFrom validates the sender address a transport puts on every mail.
func checkFrom(from string) error {
	if strings.ContainsAny(from, "\r\n") {
		return fmt.Errorf("mail sender %q must not contain line breaks", from)
	}
	if _, err := netmail.ParseAddress(from); err != nil {
		return fmt.Errorf("mail sender %q is not a valid address: %w", from, err)
	}
	return nil
}
