package models_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

func queuedMail(to string) models.Mail {
	return models.Mail{Kind: "invitation", Recipient: to, Subject: "Welcome", SealedBody: "s1.00000000.sealed"}
}

// dueMail is a queued mail due at t, for tests that move the clock.
func dueMail(to string, t time.Time) models.Mail {
	m := queuedMail(to)
	m.NextAttemptAt = t
	return m
}

func TestMailQueue_EnqueuedInARolledBackTransaction_IsNeverClaimed(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		errCancelled := errors.New("the change failed")
		err := store.Tx(ctx, func(ctx context.Context) error {
			if _, err := store.EnqueueMail(ctx, queuedMail("lost@example.com")); err != nil {
				return err
			}
			return errCancelled
		})
		if !errors.Is(err, errCancelled) {
			t.Fatalf("Tx = %v", err)
		}
		kept, err := store.EnqueueMail(ctx, queuedMail("kept@example.com"))
		if err != nil {
			t.Fatal(err)
		}

		now := time.Now().UTC()
		claimed, err := store.ClaimMails(ctx, "node-a", 10, now, now.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(claimed) != 1 || claimed[0].ID != kept.ID {
			t.Fatalf("claimed %v, want only the committed mail %s", recipients(claimed), kept.ID)
		}
		if claimed[0].State != models.MailSending || claimed[0].Attempts != 1 || claimed[0].LeaseOwner != "node-a" {
			t.Fatalf("claimed mail: state %s, attempts %d, owner %q", claimed[0].State, claimed[0].Attempts, claimed[0].LeaseOwner)
		}
	})
}

func TestMailQueue_ConcurrentSenders_ClaimEachMailOnce(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		const mails, senders = 30, 4
		for i := range mails {
			if _, err := store.EnqueueMail(ctx, queuedMail(fmt.Sprintf("r%d@example.com", i))); err != nil {
				t.Fatal(err)
			}
		}
		var (
			mu    sync.Mutex
			seen  = map[string]string{}
			wg    sync.WaitGroup
			errs  = make(chan error, senders)
			dupes []string
		)
		for s := range senders {
			owner := fmt.Sprintf("node-%d", s)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					now := time.Now().UTC()
					got, err := store.ClaimMails(ctx, owner, 3, now, now.Add(time.Minute))
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, m := range got {
						if prev, ok := seen[m.ID]; ok {
							dupes = append(dupes, m.ID+" by "+prev+" and "+owner)
						}
						seen[m.ID] = owner
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if len(dupes) > 0 {
			t.Fatalf("mails claimed twice: %v", dupes)
		}
		if len(seen) != mails {
			t.Fatalf("%d of %d mails claimed", len(seen), mails)
		}
	})
}

func TestMailQueue_ExpiredLease_IsTakenOverAndTheFirstSenderCannotFinish(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		t0 := time.Now().UTC().Truncate(time.Second)
		m, err := store.EnqueueMail(ctx, dueMail("a@example.com", t0))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := store.ClaimMails(ctx, "node-a", 5, t0, t0.Add(time.Minute)); err != nil || len(got) != 1 {
			t.Fatalf("first claim: %d mails, %v", len(got), err)
		}
		if got, err := store.ClaimMails(ctx, "node-b", 5, t0.Add(30*time.Second), t0.Add(90*time.Second)); err != nil || len(got) != 0 {
			t.Fatalf("a mail under a live lease was claimed again: %d mails, %v", len(got), err)
		}
		got, err := store.ClaimMails(ctx, "node-b", 5, t0.Add(2*time.Minute), t0.Add(3*time.Minute))
		if err != nil || len(got) != 1 {
			t.Fatalf("mail with an expired lease not taken over: %d mails, %v", len(got), err)
		}
		if got[0].Attempts != 2 || got[0].LeaseOwner != "node-b" {
			t.Fatalf("taken-over mail: attempts %d, owner %q", got[0].Attempts, got[0].LeaseOwner)
		}
		if ok, err := store.MarkMailSent(ctx, m.ID, "node-a", t0); err != nil || ok {
			t.Fatalf("the sender that lost the lease recorded the mail sent: %v, %v", ok, err)
		}
		if ok, err := store.MarkMailSent(ctx, m.ID, "node-b", t0.Add(2*time.Minute)); err != nil || !ok {
			t.Fatalf("the lease holder could not record the mail sent: %v, %v", ok, err)
		}
	})
}

func TestMailQueue_Outcomes_SentAndFailedWipeTheBodyRetryAndReleaseKeepIt(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		t0 := time.Now().UTC().Truncate(time.Second)
		claimOne := func(now time.Time) models.Mail {
			t.Helper()
			got, err := store.ClaimMails(ctx, "node-a", 1, now, now.Add(time.Minute))
			if err != nil || len(got) != 1 {
				t.Fatalf("claim: %d mails, %v", len(got), err)
			}
			return got[0]
		}
		load := func(id string) models.Mail {
			t.Helper()
			m, err := store.MailByID(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}

		m, err := store.EnqueueMail(ctx, dueMail("retry@example.com", t0))
		if err != nil {
			t.Fatal(err)
		}
		claimOne(t0)
		if ok, err := store.RetryMail(ctx, m.ID, "node-a", t0.Add(time.Hour), "451 try again later"); err != nil || !ok {
			t.Fatalf("retry: %v, %v", ok, err)
		}
		if got, err := store.ClaimMails(ctx, "node-a", 1, t0.Add(59*time.Minute), t0.Add(2*time.Hour)); err != nil || len(got) != 0 {
			t.Fatalf("a mail was claimed before its retry was due: %d, %v", len(got), err)
		}
		retried := load(m.ID)
		if retried.State != models.MailQueued || retried.SealedBody == "" || retried.LastError != "451 try again later" || retried.LeaseOwner != "" {
			t.Fatalf("after retry: state %s, body kept %v, error %q, owner %q", retried.State, retried.SealedBody != "", retried.LastError, retried.LeaseOwner)
		}

		claimed := claimOne(t0.Add(time.Hour))
		if claimed.Attempts != 2 {
			t.Fatalf("second attempt counted as %d", claimed.Attempts)
		}
		if ok, err := store.MarkMailSent(ctx, m.ID, "node-a", t0.Add(time.Hour)); err != nil || !ok {
			t.Fatalf("mark sent: %v, %v", ok, err)
		}
		sent := load(m.ID)
		if sent.State != models.MailSent || sent.SealedBody != "" || sent.SentAt == nil || sent.LastError != "" {
			t.Fatalf("after sending: state %s, body %q, sent at %v, error %q", sent.State, sent.SealedBody, sent.SentAt, sent.LastError)
		}
		if sent.Recipient != "retry@example.com" || sent.Subject != "Welcome" || sent.Kind != "invitation" {
			t.Fatalf("history lost: %q %q %q", sent.Recipient, sent.Subject, sent.Kind)
		}

		f, err := store.EnqueueMail(ctx, dueMail("gone@example.com", t0))
		if err != nil {
			t.Fatal(err)
		}
		claimOne(t0.Add(2 * time.Hour))
		if ok, err := store.FailMail(ctx, f.ID, "node-a", t0.Add(2*time.Hour), "550 no such user"); err != nil || !ok {
			t.Fatalf("fail: %v, %v", ok, err)
		}
		failed := load(f.ID)
		if failed.State != models.MailFailed || failed.SealedBody != "" || failed.FailedAt == nil || failed.LastError != "550 no such user" {
			t.Fatalf("after failing: state %s, body %q, failed at %v, error %q", failed.State, failed.SealedBody, failed.FailedAt, failed.LastError)
		}
		r, err := store.EnqueueMail(ctx, dueMail("released@example.com", t0))
		if err != nil {
			t.Fatal(err)
		}
		claimOne(t0.Add(3 * time.Hour))
		if ok, err := store.ReleaseMail(ctx, r.ID, "node-a", t0.Add(3*time.Hour)); err != nil || !ok {
			t.Fatalf("release: %v, %v", ok, err)
		}
		if again := claimOne(t0.Add(3 * time.Hour)); again.ID != r.ID || again.Attempts != 1 {
			t.Fatalf("after release the claim got %s with %d attempts; want %s, due at once, the untried attempt uncounted", again.ID, again.Attempts, r.ID)
		}
		if ok, err := store.MarkMailSent(ctx, r.ID, "node-a", t0.Add(3*time.Hour)); err != nil || !ok {
			t.Fatalf("mark sent: %v, %v", ok, err)
		}

		if got, err := store.ClaimMails(ctx, "node-a", 5, t0.Add(48*time.Hour), t0.Add(49*time.Hour)); err != nil || len(got) != 0 {
			t.Fatalf("a sent or failed mail was claimed again: %v, %v", recipients(got), err)
		}
	})
}

func recipients(ms []models.Mail) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Recipient
	}
	return out
}
