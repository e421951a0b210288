package bus

import (
	"encoding/json"

	"github.com/nats-io/nats.go"
)

// grantRevokedSubject tells every node that a support login lost access to
// an account.
const grantRevokedSubject = "psync.grants.revoked"

// GrantRevoked says that a support login may no longer watch an account.
type GrantRevoked struct {
	LoginID   string `json:"login_id"`
	AccountID string `json:"account_id"`
}

// credentialEndedSubject tells every node that a session, an API key or a
// login stopped working.
const credentialEndedSubject = "psync.credentials.ended"

// CredentialEnded says which credential stopped working; one field is set.
type CredentialEnded struct {
	SessionID string `json:"session_id,omitempty"`
	APIKeyID  string `json:"api_key_id,omitempty"`
	LoginID   string `json:"login_id,omitempty"`
}

// PublishGrantRevoked tells every node that the login lost its grant to
// watch the account.
func (b *Bus) PublishGrantRevoked(loginID, accountID string) error {
	return b.publishJSON(grantRevokedSubject, GrantRevoked{LoginID: loginID, AccountID: accountID})
}

// PublishSessionEnded tells every node that the session ended (logout, or
// a replayed refresh token).
func (b *Bus) PublishSessionEnded(sessionID string) error {
	return b.publishJSON(credentialEndedSubject, CredentialEnded{SessionID: sessionID})
}

// PublishAPIKeyRevoked tells every node that the API key was revoked.
func (b *Bus) PublishAPIKeyRevoked(keyID string) error {
	return b.publishJSON(credentialEndedSubject, CredentialEnded{APIKeyID: keyID})
}

// PublishLoginEnded tells every node that the login can no longer sign in
// (deactivated, or its password reset).
func (b *Bus) PublishLoginEnded(loginID string) error {
	return b.publishJSON(credentialEndedSubject, CredentialEnded{LoginID: loginID})
}

// SubscribeGrantRevoked calls f with every revoked grant, from any node,
// until the returned function is called. f must return quickly.
func (b *Bus) SubscribeGrantRevoked(f func(GrantRevoked)) (unsubscribe func(), err error) {
	return subscribeJSON(b, grantRevokedSubject, f)
}

// SubscribeCredentialEnded calls f with every credential that stopped
// working, from any node, until the returned function is called. f must
// return quickly.
func (b *Bus) SubscribeCredentialEnded(f func(CredentialEnded)) (unsubscribe func(), err error) {
	return subscribeJSON(b, credentialEndedSubject, func(c CredentialEnded) {
		if c != (CredentialEnded{}) {
			f(c)
		}
	})
}

func (b *Bus) publishJSON(subject string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.publish(&nats.Msg{Subject: subject, Data: data})
}

// subscribeJSON calls f with every message on subject that decodes as a
// T; one that does not is dropped.
func subscribeJSON[T any](b *Bus, subject string, f func(T)) (unsubscribe func(), err error) {
	return b.subscribe(subject, false, func(m *nats.Msg) {
		var v T
		if json.Unmarshal(m.Data, &v) == nil {
			f(v)
		}
	})
}
