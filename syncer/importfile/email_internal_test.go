package importfile

import (
	"net/mail"
	"testing"
)

// TestIsPlainAddress_AgreesWithNetMail checks that the fast path never
// takes an address net/mail would refuse or read differently.
func TestIsPlainAddress_AgreesWithNetMail(t *testing.T) {
	for _, s := range []string{
		"ann@example.com", "o'brien@example.com", "a+tag@mail.example.org", "a%b@x", "a@-x-.com",
		"-@-", "'@x", "1@2.3", "a.b.c@d.e.f", "A_B@EXAMPLE.COM",
		"a..b@x", ".a@x", "a.@x", "a@x..y", "a@.x", "a@x.", "@x", "a@", "a@b@c", "a b@x", "ann@exämple.com",
	} {
		a, err := mail.ParseAddress(s)
		netMail := err == nil && a.Name == "" && a.Address == s
		if isPlainAddress(s) && !netMail {
			t.Errorf("%q: the fast path takes it, net/mail says %v, %+v", s, err, a)
		}
		if got := checkEmail(s) == ""; got != netMail {
			t.Errorf("%q: checkEmail takes it: %v, net/mail: %v", s, got, netMail)
		}
	}
}
