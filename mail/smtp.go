package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// smtpCommandTimeout bounds each exchange with the server, on top of the
// Queue's bound on the whole attempt.
const smtpCommandTimeout = 30 * time.Second

// SMTPTransport sends mail to an SMTP server (a relay or a mail service's
// submission port). Each mail is sent over its own connection.
type SMTPTransport struct {
	host        string
	port        int
	implicitTLS bool
	policy      gomail.TLSPolicy
	tlsConfig   *tls.Config
	user, pass  string
	from        string
	label       string
}

// NewSMTPTransport parses an SMTP URL and returns a transport that sends
// mail from the address from. The URL's forms:
//
//	smtp://user:pass@host:587   STARTTLS when the server offers it
//	smtp://host:25?starttls=required   refuses to send without STARTTLS
//	smtp://host:25?starttls=none       never starts TLS
//	smtps://user:pass@host:465  TLS from the first byte
//
// The port defaults to 587 for smtp and 465 for smtps. With a user name,
// the transport signs in with PLAIN or LOGIN, and only over TLS unless the
// server is on the loopback interface. insecure_skip_verify=true accepts
// any server certificate, for tests and development only.
func NewSMTPTransport(rawURL, from string) (*SMTPTransport, error) {
	if err := checkFrom(from); err != nil {
		return nil, err
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("SMTP URL does not parse")
	}
	t := &SMTPTransport{host: u.Hostname(), from: from, label: u.Redacted()}
	switch u.Scheme {
	case "smtp":
		t.port = gomail.DefaultPortTLS
	case "smtps":
		t.port, t.implicitTLS = gomail.DefaultPortSSL, true
	default:
		return nil, fmt.Errorf("SMTP URL %s: the scheme must be smtp or smtps", t.label)
	}
	if t.host == "" {
		return nil, fmt.Errorf("SMTP URL %s names no host", t.label)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("SMTP URL %s: a path means nothing here", t.label)
	}
	if p := u.Port(); p != "" {
		if t.port, err = strconv.Atoi(p); err != nil || t.port < 1 || t.port > 65535 {
			return nil, fmt.Errorf("SMTP URL %s: the port must be between 1 and 65535", t.label)
		}
	}
	if u.User != nil {
		t.user = u.User.Username()
		t.pass, _ = u.User.Password()
	}
	insecure := false
	t.policy = gomail.TLSOpportunistic
	for key, values := range u.Query() {
		value := values[len(values)-1]
		switch key {
		case "starttls":
			if t.implicitTLS {
				return nil, fmt.Errorf("SMTP URL %s: starttls does not apply to smtps, which is TLS throughout", t.label)
			}
			switch value {
			case "required":
				t.policy = gomail.TLSMandatory
			case "none":
				t.policy = gomail.NoTLS
			case "", "opportunistic":
				t.policy = gomail.TLSOpportunistic
			default:
				return nil, fmt.Errorf("SMTP URL %s: starttls must be required, none or opportunistic", t.label)
			}
		case "insecure_skip_verify":
			if insecure, err = strconv.ParseBool(value); err != nil {
				return nil, fmt.Errorf("SMTP URL %s: insecure_skip_verify must be true or false", t.label)
			}
		default:
			return nil, fmt.Errorf("SMTP URL %s: unknown parameter %q (known: starttls, insecure_skip_verify)", t.label, key)
		}
	}
	t.tlsConfig = &tls.Config{ServerName: t.host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	return t, nil
}

// String names the server without its password, for logs.
func (t *SMTPTransport) String() string { return t.label }

// Send delivers one mail. The whole exchange ends when ctx does: the
// connection is closed under a server that stops answering. A 5xx reply to
// the recipient or to the message wraps ErrRejected.
func (t *SMTPTransport) Send(ctx context.Context, id string, m Message) error {
	msg, err := compose(t.from, id, m, gomail.EncodingQP)
	if err != nil {
		return err
	}
	var (
		mu    sync.Mutex
		stops []func() bool
	)
	// go-mail bounds each command but not the exchange; closing the
	// connection when ctx ends bounds the whole attempt, which the
	// Queue's lease depends on.
	dial := func(dialCtx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		var err error
		if t.implicitTLS {
			d := tls.Dialer{Config: t.tlsConfig.Clone()}
			conn, err = d.DialContext(dialCtx, network, addr)
		} else {
			var d net.Dialer
			conn, err = d.DialContext(dialCtx, network, addr)
		}
		if err != nil {
			return nil, err
		}
		mu.Lock()
		stops = append(stops, context.AfterFunc(ctx, func() { _ = conn.Close() }))
		mu.Unlock()
		return conn, nil
	}
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, stop := range stops {
			stop()
		}
	}()
	opts := []gomail.Option{
		gomail.WithPort(t.port),
		gomail.WithTimeout(smtpCommandTimeout),
		gomail.WithTLSPolicy(t.policy),
		gomail.WithTLSConfig(t.tlsConfig.Clone()),
		gomail.WithDialContextFunc(dial),
	}
	if t.implicitTLS {
		opts = append(opts, gomail.WithSSL())
	}
	if t.user != "" {
		opts = append(opts,
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin),
			gomail.WithUsername(t.user), gomail.WithPassword(t.pass))
	}
	client, err := gomail.NewClient(t.host, opts...)
	if err != nil {
		return fmt.Errorf("SMTP client: %w", err)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("send to %s: %w (%w)", t.label, ctx.Err(), err)
		}
		if rejected(err) {
			return fmt.Errorf("%w: %w", ErrRejected, err)
		}
		return fmt.Errorf("send to %s: %w", t.label, err)
	}
	return nil
}

// rejected reports whether err is the server refusing this recipient or
// this message for good. Refusals of the sender or of the sign-in are
// not: they are the operator's to fix, and the mail goes out once fixed.
func rejected(err error) bool {
	var se *gomail.SendError
	if !errors.As(err, &se) || se.IsTemp() || se.ErrorCode() < 500 || se.ErrorCode() > 599 {
		return false
	}
	switch se.Reason {
	case gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrSMTPDataClose:
		return true
	}
	return false
}
