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

// recordingPublisher keeps what the event log published, in order.
type recordingPublisher struct {
	mu     sync.Mutex
	events []models.Event
}

func (p *recordingPublisher) PublishEvents(_ context.Context, events []models.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, events...)
}

func TestEventLog_ConcurrentWriters_GetGapFreeOffsetsPerAccount(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		pub := &recordingPublisher{}
		log := models.NewEventLog(store, pub)
		a := mustAccount(t, store, "A")
		b := mustAccount(t, store, "B")

		const writers, perWriter = 4, 25
		var wg sync.WaitGroup
		errs := make(chan error, writers*2+1)

		// A reader tails account A the way a resuming client does, asking
		// for everything after the last offset it saw. If a later offset
		// ever became visible before an earlier one committed, the reader
		// would jump past the earlier one and never see it.
		readerDone := make(chan struct{})
		stopReader := make(chan struct{})
		seenByReader := 0
		go func() {
			defer close(readerDone)
			last := int64(0)
			for {
				select {
				case <-stopReader:
					if last == writers*perWriter {
						return
					}
				default:
				}
				page, err := store.ListEvents(ctx, models.EventQuery{AccountID: a.ID, After: &last, Limit: 50})
				if err != nil {
					errs <- err
					return
				}
				for _, e := range page {
					if e.Offset != last+1 {
						errs <- fmt.Errorf("reader at offset %d next saw %d: offsets became visible out of commit order", last, e.Offset)
						return
					}
					last = e.Offset
					seenByReader++
				}
			}
		}()
		for w := range writers {
			for _, acct := range []string{a.ID, b.ID} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range perWriter {
						_, err := log.Append(ctx, models.NewEvent{AccountID: acct, Type: "test.event", Message: fmt.Sprintf("writer %d event %d", w, i)})
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
		}
		wg.Wait()
		close(stopReader)
		<-readerDone
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if seenByReader != writers*perWriter {
			t.Fatalf("the tailing reader saw %d events, want %d", seenByReader, writers*perWriter)
		}

		for _, acct := range []string{a.ID, b.ID} {
			after := int64(0)
			events, err := store.ListEvents(ctx, models.EventQuery{AccountID: acct, After: &after, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != writers*perWriter {
				t.Fatalf("account has %d events, want %d", len(events), writers*perWriter)
			}
			for i, e := range events {
				if e.Offset != int64(i+1) {
					t.Fatalf("event %d has offset %d: offsets must run 1..N without gaps", i, e.Offset)
				}
			}
			last, err := store.LastEventOffset(ctx, acct)
			if err != nil || last != int64(writers*perWriter) {
				t.Fatalf("last offset = %d, %v", last, err)
			}
		}
		if len(pub.events) != 2*writers*perWriter {
			t.Fatalf("published %d events after commit, want %d", len(pub.events), 2*writers*perWriter)
		}
	})
}

func TestEventLog_RolledBackTransaction_PublishesNothingAndKeepsOffsets(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		pub := &recordingPublisher{}
		log := models.NewEventLog(store, pub)
		a := mustAccount(t, store, "A")

		errBoom := fmt.Errorf("boom")
		err := store.Tx(ctx, func(ctx context.Context) error {
			if _, err := log.Append(ctx, models.NewEvent{AccountID: a.ID, Type: "test.event", Message: "never"}); err != nil {
				return err
			}
			return errBoom
		})
		if err != errBoom {
			t.Fatalf("Tx returned %v", err)
		}
		if len(pub.events) != 0 {
			t.Fatalf("a rolled-back event was published: %+v", pub.events)
		}
		written, err := log.Append(ctx, models.NewEvent{AccountID: a.ID, Type: "test.event", Message: "kept"})
		if err != nil {
			t.Fatal(err)
		}
		if written[0].Offset != 1 {
			t.Fatalf("offset after a rollback = %d, want 1", written[0].Offset)
		}
	})
}

func TestListEvents_AfterAndBefore_PageInOppositeOrders(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		log := models.NewEventLog(store, nil)
		a := mustAccount(t, store, "A")
		for i := range 10 {
			if _, err := log.Append(ctx, models.NewEvent{AccountID: a.ID, Type: "test.event", Message: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		after := int64(3)
		asc, err := store.ListEvents(ctx, models.EventQuery{AccountID: a.ID, After: &after, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if got := offsets(asc); fmt.Sprint(got) != "[4 5 6]" {
			t.Fatalf("after=3 gave %v", got)
		}
		before := int64(8)
		desc, err := store.ListEvents(ctx, models.EventQuery{AccountID: a.ID, Before: &before, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if got := offsets(desc); fmt.Sprint(got) != "[7 6 5]" {
			t.Fatalf("before=8 gave %v", got)
		}
	})
}

// TestListEvents_EndsAtTheCounter: a page never reaches past the
// account's counter as read just before it. On MariaDB a page's snapshot
// can hold a commit made while the snapshot was taken without the one made
// just before it; the counter read first bounds the page to offsets that
// every later snapshot holds. An entry past the counter stands for one
// committed after that read: neither paging direction shows it.
func TestListEvents_EndsAtTheCounter(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		log := models.NewEventLog(store, nil)
		a := mustAccount(t, store, "A")
		for i := range 3 {
			if _, err := log.Append(ctx, models.NewEvent{AccountID: a.ID, Type: "test.event", Message: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		beyond := models.Event{ID: models.NewID(), AccountID: a.ID, Offset: 5, Type: "test.event", Severity: models.SeverityInfo, Message: "beyond", OccurredAt: time.Now()}
		if err := store.DB().Create(&beyond).Error; err != nil {
			t.Fatal(err)
		}
		after := int64(0)
		asc, err := store.ListEvents(ctx, models.EventQuery{AccountID: a.ID, After: &after, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if got := offsets(asc); fmt.Sprint(got) != "[1 2 3]" {
			t.Fatalf("after=0 gave %v, want the three offsets up to the counter", got)
		}
		desc, err := store.ListEvents(ctx, models.EventQuery{AccountID: a.ID, Newest: true, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if got := offsets(desc); fmt.Sprint(got) != "[3 2 1]" {
			t.Fatalf("newest first gave %v, want the three offsets up to the counter", got)
		}
		none, err := store.ListEvents(ctx, models.EventQuery{AccountID: models.NewID(), After: &after, Limit: 10})
		if err != nil || len(none) != 0 {
			t.Fatalf("an unknown account's log gave %v, %v; want nothing", offsets(none), err)
		}
	})
}

func offsets(events []models.Event) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.Offset
	}
	return out
}

func mustAccount(t *testing.T, store *models.Store, name string) models.Account {
	t.Helper()
	acct, err := store.CreateAccount(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return acct
}

// TestEventLog_InATransaction_TakesTheCounterLast: a transaction that
// appends an event and then waits for a row another transaction holds,
// while that one appends an event of the same account, does not deadlock:
// events are written when their transaction ends, so neither holds the
// account's counter while waiting for anything else. Each runs once.
func TestEventLog_InATransaction_TakesTheCounterLast(t *testing.T) {
	store := mysqlStore(t)
	ctx := context.Background()
	log := models.NewEventLog(store, nil)
	a, row := mustAccount(t, store, "Counter Ltd"), mustAccount(t, store, "Other Row Ltd")

	var mu sync.Mutex
	attempts := map[string]int{}
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		attempts[name]++
		return attempts[name]
	}
	appended, locked := make(chan struct{}), make(chan struct{})
	wait := func(c chan struct{}) error {
		select {
		case <-c:
			return nil
		case <-time.After(30 * time.Second):
			return errors.New("the other transaction never got there")
		}
	}
	errs := make(chan error, 2)
	go func() {
		errs <- store.Tx(ctx, func(ctx context.Context) error {
			n := count("append then lock")
			if _, err := log.Append(ctx, models.NewEvent{AccountID: a.ID, Type: "test.event", Message: "first"}); err != nil {
				return err
			}
			if n == 1 {
				close(appended)
				if err := wait(locked); err != nil {
					return err
				}
			}
			_, err := store.LockAccount(ctx, row.ID)
			return err
		})
	}()
	go func() {
		errs <- store.Tx(ctx, func(ctx context.Context) error {
			n := count("lock then append")
			if _, err := store.LockAccount(ctx, row.ID); err != nil {
				return err
			}
			if n == 1 {
				close(locked)
				if err := wait(appended); err != nil {
					return err
				}
			}
			_, err := log.Append(ctx, models.NewEvent{AccountID: a.ID, Type: "test.event", Message: "second"})
			return err
		})
	}()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if attempts["append then lock"] != 1 || attempts["lock then append"] != 1 {
		t.Fatalf("attempts %v, want each transaction run once: they deadlocked on the account's counter", attempts)
	}
	events, err := store.ListEvents(ctx, models.EventQuery{AccountID: a.ID, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 {
		t.Fatalf("%d events written, want 2", len(events))
	}
}
