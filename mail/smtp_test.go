package mail_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/mail"
)

func sendOne(t *testing.T, rawURL string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return smtpTransport(t, rawURL).Send(ctx, "01J00000000000000000000000", invitation("ada@example.com"))
}

func TestSMTPTransport_STARTTLS_EncryptsBeforeSigningIn(t *testing.T) {
	server := startServer(t, serverOptions{user: "mailer", pass: "pw", tls: selfSignedTLS(t)})
	for _, query := range []string{"insecure_skip_verify=true", "starttls=required&insecure_skip_verify=true"} {
		t.Run(query, func(t *testing.T) {
			before := len(server.Received())
			if err := sendOne(t, "smtp://mailer:pw@"+server.Addr+"?"+query); err != nil {
				t.Fatal(err)
			}
			got := server.Received()
			if len(got) != before+1 {
				t.Fatalf("server received %d mails, want %d", len(got), before+1)
			}
			if r := got[len(got)-1]; !r.TLS || r.User != "mailer" {
				t.Fatalf("mail arrived with TLS %v, signed in as %q; want TLS and mailer", r.TLS, r.User)
			}
		})
	}
}

func TestSMTPTransport_ImplicitTLS_SMTPS(t *testing.T) {
	server := startServer(t, serverOptions{user: "mailer", pass: "pw", tls: selfSignedTLS(t), implicitTLS: true})
	if err := sendOne(t, "smtps://mailer:pw@"+server.Addr+"?insecure_skip_verify=true"); err != nil {
		t.Fatal(err)
	}
	got := server.Received()
	if len(got) != 1 || !got[0].TLS || got[0].User != "mailer" {
		t.Fatalf("received %d mails (TLS %v); want one over TLS, signed in", len(got), len(got) == 1 && got[0].TLS)
	}
}

func TestSMTPTransport_UnverifiableCertificate_IsRefused(t *testing.T) {
	server := startServer(t, serverOptions{user: "mailer", pass: "pw", tls: selfSignedTLS(t)})
	err := sendOne(t, "smtp://mailer:pw@"+server.Addr)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Send to a server with a self-signed certificate = %v, want a certificate error", err)
	}
	if n := len(server.Received()); n != 0 {
		t.Fatalf("the server received %d mails", n)
	}
}

func TestSMTPTransport_STARTTLSRequired_ServerWithoutIt_NothingIsSent(t *testing.T) {
	server := startServer(t, serverOptions{})
	err := sendOne(t, "smtp://"+server.Addr+"?starttls=required")
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("Send = %v, want an error about STARTTLS", err)
	}
	if n := len(server.Received()); n != 0 {
		t.Fatalf("the server received %d mails in clear", n)
	}
}

func TestSMTPTransport_WrongPassword_IsAnErrorThatKeepsThePasswordOut(t *testing.T) {
	server := startServer(t, serverOptions{user: "mailer", pass: "right"})
	err := sendOne(t, "smtp://mailer:wrong-pw-123@"+server.Addr)
	if err == nil {
		t.Fatal("sent with a wrong password")
	}
	if strings.Contains(err.Error(), "wrong-pw-123") {
		t.Fatalf("the error shows the password: %v", err)
	}
}

func TestSMTPTransport_StalledServer_SendEndsWithItsContext(t *testing.T) {
	server := startServer(t, serverOptions{})
	unblock := make(chan struct{})
	t.Cleanup(func() { close(unblock) })
	server.setOnData(func(int) error {
		<-unblock
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- smtpTransport(t, "smtp://"+server.Addr).Send(ctx, "01J00000000000000000000001", invitation("ada@example.com"))
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Send reported success though the server never answered")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Send kept waiting on a stalled server after its context ended")
	}
}

func TestNewSMTPTransport_URLs(t *testing.T) {
	valid := []string{
		"smtp://mail.example.com",
		"smtp://user:pass@mail.example.com:587",
		"smtp://mail.example.com:25?starttls=none",
		"smtp://mail.example.com?starttls=required",
		"smtps://user:pass@mail.example.com:465",
		"smtps://mail.example.com?insecure_skip_verify=true",
	}
	for _, u := range valid {
		if _, err := mail.NewSMTPTransport(u, testFrom); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	invalid := map[string]string{
		"http://mail.example.com":                           "scheme",
		"smtp://":                                           "host",
		"smtp://mail.example.com:0":                         "port",
		"smtp://mail.example.com:99999":                     "port",
		"smtp://mail.example.com?starttls=maybe":            "starttls",
		"smtps://mail.example.com?starttls=required":        "starttls",
		"smtp://mail.example.com?insecure_skip_verify=yes!": "insecure_skip_verify",
		"smtp://mail.example.com?tls=on":                    "unknown parameter",
		"smtp://mail.example.com/inbox":                     "path",
	}
	for u, want := range invalid {
		_, err := mail.NewSMTPTransport(u, testFrom)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one about %s", u, err, want)
		}
	}
	if _, err := mail.NewSMTPTransport("smtp://mail.example.com", "not an address"); err == nil {
		t.Error("a sender that is not an address was accepted")
	}
	if _, err := mail.NewSMTPTransport("smtp://mail.example.com", "a@example.com\r\nBcc: x@example.com"); err == nil {
		t.Error("a sender with a line break was accepted")
	}

	tr, err := mail.NewSMTPTransport("smtp://user:topsecret@mail.example.com", testFrom)
	if err != nil {
		t.Fatal(err)
	}
	if s := tr.String(); strings.Contains(s, "topsecret") || !strings.Contains(s, "mail.example.com") {
		t.Errorf("String() = %q: it must name the host and hide the password", s)
	}
	if _, err := mail.NewSMTPTransport("smtp://user:topsecret@mail.example.com?bogus=1", testFrom); err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("error %v must hide the password", err)
	}
}
