package auth

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/panelsync/panelsync/mail"
	"github.com/panelsync/panelsync/models"
)

// mailPage is the HTML body shared by every mail: a greeting, paragraphs,
// an optional button, and a closing line. html/template escapes every
// value, so a login's name cannot inject markup.
var mailPage = template.Must(template.New("mail").Parse(`<!doctype html>
<html><body style="font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;color:#1f2933;line-height:1.5">
<p>Hello {{.Name}},</p>
{{range .Paragraphs}}<p>{{.}}</p>
{{end}}{{if .Link}}<p><a href="{{.Link}}" style="display:inline-block;padding:10px 18px;background:#1a56db;color:#fff;border-radius:4px;text-decoration:none">{{.Button}}</a></p>
<p style="font-size:90%;color:#52606d">If the button does not work, open this address: {{.Link}}</p>
{{end}}<p style="font-size:90%;color:#52606d">{{.Footer}}</p>
</body></html>
`))

type mailContent struct {
	Name       string
	Paragraphs []string
	Link       string
	Button     string
	Footer     string
}

// render builds the plain-text and HTML bodies of one mail from the same
// content.
func render(c mailContent) (text, html string) {
	var t bytes.Buffer
	fmt.Fprintf(&t, "Hello %s,\n\n", c.Name)
	for _, p := range c.Paragraphs {
		fmt.Fprintf(&t, "%s\n\n", p)
	}
	if c.Link != "" {
		fmt.Fprintf(&t, "%s:\n%s\n\n", c.Button, c.Link)
	}
	fmt.Fprintf(&t, "%s\n", c.Footer)
	var h bytes.Buffer
	// The template is fixed and its values are strings: it cannot fail.
	_ = mailPage.Execute(&h, c)
	return t.String(), h.String()
}

func invitationMail(accountName string, login models.Login, inviter, link string, ttl time.Duration) mail.Message {
	c := mailContent{
		Name: login.Name,
		Paragraphs: []string{
			fmt.Sprintf("%s has invited you to %s on panelsync as %s.", inviter, accountName, article(string(login.Role))),
			fmt.Sprintf("Choose your password to accept. The link works once, for %d hours.", int(ttl.Hours())),
		},
		Link:   link,
		Button: "Accept the invitation",
		Footer: "If you did not expect this invitation, you can ignore this mail.",
	}
	text, html := render(c)
	return mail.Message{To: login.Email, Subject: "You are invited to " + accountName + " on panelsync", Text: text, HTML: html, Kind: "invitation"}
}

func resetMail(login models.Login, link string, ttl time.Duration) mail.Message {
	valid := "one hour"
	if h := int(ttl.Hours()); h != 1 {
		valid = fmt.Sprintf("%d hours", h)
	}
	c := mailContent{
		Name: login.Name,
		Paragraphs: []string{
			"Someone asked to reset the password of your panelsync login " + login.Email + ".",
			"Choose a new password with the link below. It works once, for " + valid + ". Every device signed in with the old password will be signed out.",
		},
		Link:   link,
		Button: "Choose a new password",
		Footer: "If you did not ask for this, ignore this mail: your password stays as it is.",
	}
	text, html := render(c)
	return mail.Message{To: login.Email, Subject: "Reset your panelsync password", Text: text, HTML: html, Kind: "password_reset"}
}

func passwordChangedMail(login models.Login) mail.Message {
	c := mailContent{
		Name: login.Name,
		Paragraphs: []string{
			"The password of your panelsync login " + login.Email + " has just been changed, and your other devices have been signed out.",
		},
		Footer: "If you did not change it, reset your password at once and tell your account's owner.",
	}
	text, html := render(c)
	return mail.Message{To: login.Email, Subject: "Your panelsync password was changed", Text: text, HTML: html, Kind: "password_changed"}
}

// article puts "a" or "an" before a role name.
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an " + word
	}
	return "a " + word
}
