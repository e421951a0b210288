package mail

import (
	"fmt"
	netmail "net/mail"
	"strings"

	gomail "github.com/wneessen/go-mail"
)

// kindHeader names the kind of a mail, so that a mailbox rule or a test
// can tell invitations from resets without reading the body.
const kindHeader gomail.Header = "X-Panelsync-Kind"

// compose builds the RFC 5322 message for m: a plain and an HTML part as
// multipart/alternative when both are set, one part otherwise. The
// Message-ID is derived from the queue id, so a mail delivered twice
// (a sender lost its lease mid-send) is recognisably the same mail. The
// bodies are written with encoding: quoted-printable for SMTP, which
// keeps every line within the protocol's limits, or 8bit for a file read
// as it is.
func compose(from, id string, m Message, encoding gomail.Encoding) (*gomail.Msg, error) {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent(), gomail.WithEncoding(encoding))
	if err := msg.From(from); err != nil {
		return nil, fmt.Errorf("mail sender: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("mail recipient: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageIDWithValue(id + "@" + senderDomain(from))
	msg.SetGenHeader(kindHeader, m.Kind)
	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.Text != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	default:
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// senderDomain is the domain of the sender's address, for Message-IDs.
func senderDomain(from string) string {
	addr, err := netmail.ParseAddress(from)
	if err != nil {
		return "localhost"
	}
	if at := strings.LastIndexByte(addr.Address, '@'); at >= 0 && at < len(addr.Address)-1 {
		return addr.Address[at+1:]
	}
	return "localhost"
}
