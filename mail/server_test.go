package mail_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// testServer is a real SMTP server on 127.0.0.1, run by go-smtp, that
// records what it receives and can be told to refuse.
type testServer struct {
	Addr string
	// User and Pass, when set, make the server require AUTH PLAIN.
	User, Pass string

	mu       sync.Mutex
	received []received
	// dataCalls counts DATA commands: delivery attempts that got as far
	// as the message.
	dataCalls int
	// onData decides the reply to the n-th DATA (from 1); nil accepts.
	onData func(n int) error
	// onRcpt decides the reply to each RCPT TO; nil accepts.
	onRcpt func(to string) error
}

// received is one message the server accepted.
type received struct {
	From string
	To   []string
	Data []byte
	TLS  bool
	User string
}

type serverOptions struct {
	user, pass string
	// tls offers STARTTLS with this configuration.
	tls *tls.Config
	// implicitTLS speaks TLS from the first byte (smtps).
	implicitTLS bool
}

// startServer runs a test server until the test ends.
func startServer(t *testing.T, opts serverOptions) *testServer {
	t.Helper()
	ts := &testServer{User: opts.user, Pass: opts.pass}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &testSession{server: ts, conn: c}, nil
	}))
	s.Domain = "localhost"
	s.AllowInsecureAuth = true
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	s.ErrorLog = log.New(io.Discard, "", 0)
	var ln net.Listener
	var err error
	if opts.implicitTLS {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", opts.tls)
	} else {
		s.TLSConfig = opts.tls
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	ts.Addr = ln.Addr().String()
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = s.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = s.Close()
		<-served
	})
	return ts
}

// Received returns the messages accepted so far.
func (ts *testServer) Received() []received {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]received(nil), ts.received...)
}

// DataCalls returns how many delivery attempts reached DATA.
func (ts *testServer) DataCalls() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.dataCalls
}

func (ts *testServer) setOnData(f func(n int) error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.onData = f
}

func (ts *testServer) setOnRcpt(f func(to string) error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.onRcpt = f
}

type testSession struct {
	server *testServer
	conn   *smtp.Conn
	user   string
	from   string
	to     []string
}

func (s *testSession) AuthMechanisms() []string {
	if s.server.User == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *testSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.server.User || pass != s.server.Pass {
			return smtp.ErrAuthFailed
		}
		s.user = user
		return nil
	}), nil
}

func (s *testSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.server.User != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *testSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.server.mu.Lock()
	onRcpt := s.server.onRcpt
	s.server.mu.Unlock()
	if onRcpt != nil {
		if err := onRcpt(to); err != nil {
			return err
		}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.server.mu.Lock()
	s.server.dataCalls++
	n, onData := s.server.dataCalls, s.server.onData
	s.server.mu.Unlock()
	if onData != nil {
		if err := onData(n); err != nil {
			return err
		}
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.server.mu.Lock()
	s.server.received = append(s.server.received, received{From: s.from, To: s.to, Data: data, TLS: isTLS, User: s.user})
	s.server.mu.Unlock()
	return nil
}

func (s *testSession) Reset()        { s.from, s.to = "", nil }
func (s *testSession) Logout() error { return nil }

// tempFailure is the reply of a server that cannot take mail right now.
func tempFailure() error {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
}

// unknownUser is a server's final refusal of a recipient.
func unknownUser() error {
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
}

// selfSignedTLS returns a server configuration with a certificate for
// 127.0.0.1 that no one has signed.
func selfSignedTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "panelsync test smtp"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// parsedMail is a received message taken apart.
type parsedMail struct {
	Header netmail.Header
	// Parts maps each body part's media type to its decoded content.
	Parts map[string]string
}

// parseMail reads an RFC 5322 message with a single or a
// multipart/alternative body.
func parseMail(t *testing.T, raw []byte) parsedMail {
	t.Helper()
	msg, err := netmail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("received message does not parse: %v", err)
	}
	out := parsedMail{Header: msg.Header, Parts: map[string]string{}}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("content type: %v", err)
	}
	if !strings.HasPrefix(mediaType, "multipart/") {
		body, err := io.ReadAll(decoded(msg.Header.Get("Content-Transfer-Encoding"), msg.Body))
		if err != nil {
			t.Fatal(err)
		}
		out.Parts[mediaType] = string(body)
		return out
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("multipart body: %v", err)
		}
		partType, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		out.Parts[partType] = string(body)
	}
}

// decoded undoes a single-part body's transfer encoding.
func decoded(encoding string, r io.Reader) io.Reader {
	if strings.EqualFold(encoding, "quoted-printable") {
		return quotedprintable.NewReader(r)
	}
	return r
}
