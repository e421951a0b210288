package models

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Bounds of a user lookup.
const (
	// MaxPeopleQueryRunes is the longest text a lookup takes.
	MaxPeopleQueryRunes = 200
	// DefaultPeoplePageSize and MaxPeoplePageSize bound the people on one
	// page.
	DefaultPeoplePageSize = 50
	MaxPeoplePageSize     = 200
	// MaxPeopleRows bounds the panel users one page reads, over all its
	// people: a login linked at every one of 10,000 locations must not
	// turn one page into 10,000 rows.
	MaxPeopleRows = 1000
)

// PeopleQuery looks people up across an account's locations by Text: a
// part of a name or e-mail, an external id, or a user number.
type PeopleQuery struct {
	AccountID string
	// Text is trimmed and checked already (Label).
	Text   string
	Cursor string
	Limit  int
}

// Person is one person a lookup found: the panel users of the account that
// are the same person, which are the users linked to one login, else the
// unlinked users sharing one e-mail, else a single user.
type Person struct {
	// LoginID is the login the person's users are linked to, if any.
	LoginID *string
	// Name is the login's name when linked, else the name of the user a
	// run received most recently.
	Name string
	// Email and ExternalID are the most recently received non-empty ones
	// of the person's users; ExternalID is nil when none has one. A
	// linked login's own e-mail is not shown: logins are listed to owners
	// and admins only.
	Email      string
	ExternalID *string
	// Users are the person's panel users, by location name.
	Users []PersonUser
	// UsersTruncated is set when the person has more users than one page
	// reads (MaxPeopleRows); Users are the first of them.
	UsersTruncated bool
}

// PersonUser is one panel user of a person, with its location's name. It
// is read column by column: the keyed digest of the user's code is never
// loaded.
type PersonUser struct {
	ID            string
	LocationID    string
	LocationName  string
	UserNumber    int
	Name          string
	Email         string
	ExternalID    string
	Authority     string
	Partitions    string
	HasCode       bool
	LoginID       *string
	ReceivedAt    *time.Time
	ReceivedRunID *string
	UpdatedAt     time.Time
	// PersonKind and PersonKey name the person the user belongs to, as
	// personKindSQL and personKeySQL compute them.
	PersonKind int
	PersonKey  string
}

// personKey names a person, and the last person of a page is the cursor
// of the next: people are ordered by the kind of their key (0 a login, 1
// an e-mail, 2 a single user), then by the key.
type personKey struct {
	PersonKind int    `json:"k"`
	PersonKey  string `json:"v"`
}

// The person a panel user belongs to, as SQL: its login when linked, else
// its e-mail when it has one, else the user itself. Grouping, ordering and
// paging all use these two expressions, so that they cannot disagree.
const (
	personKindSQL = "CASE WHEN pu.login_id IS NOT NULL THEN 0 WHEN pu.email <> '' THEN 1 ELSE 2 END"
	personKeySQL  = "CASE WHEN pu.login_id IS NOT NULL THEN pu.login_id WHEN pu.email <> '' THEN pu.email ELSE pu.id END"
)

// LookupPeople finds the people of an account that match q and returns a
// page of them, with every panel user of each, and the cursor of the next
// page (empty on the last).
//
// A person matches when one of their users' names or e-mails contains the
// text (ignoring case), when the text is their external id or, if it is a
// number, their user number, or when the name of the login they are linked
// to contains the text: that is the name the answer shows. The match runs
// in the database over the account's panel users, as no index serves a
// substring; what it returns is bounded, at most Limit+1 people and then
// at most MaxPeopleRows users.
func (s *Store) LookupPeople(ctx context.Context, q PeopleQuery) ([]Person, string, error) {
	keys, more, err := s.matchingPeople(ctx, q)
	if err != nil || len(keys) == 0 {
		return []Person{}, "", err
	}
	users, err := s.usersOfPeople(ctx, q.AccountID, keys)
	if err != nil {
		return nil, "", err
	}
	cut := len(users) > MaxPeopleRows
	if cut {
		users = users[:MaxPeopleRows]
	}
	people := groupPeople(users)
	last := keys[len(keys)-1]
	if cut && len(people) > 0 {
		if len(people) > 1 {
			// The last person's users may go on past the rows read: that
			// person starts the next page instead.
			people = people[:len(people)-1]
		} else {
			people[0].UsersTruncated = true
		}
		u := people[len(people)-1].Users[0]
		last = personKey{PersonKind: u.PersonKind, PersonKey: u.PersonKey}
		more = more || last != keys[len(keys)-1]
	}
	if err := s.nameLinkedPeople(ctx, q.AccountID, people); err != nil {
		return nil, "", err
	}
	next := ""
	if more {
		next = encodeCursor(last)
	}
	return people, next, nil
}

// matchingPeople returns the keys of the first q.Limit people after the
// cursor that match q, and whether more follow.
func (s *Store) matchingPeople(ctx context.Context, q PeopleQuery) ([]personKey, bool, error) {
	match, args := peopleMatch(q.AccountID, q.Text)
	db := s.conn(ctx).Table("panel_users AS pu").
		Joins("JOIN locations AS l ON l.id = pu.location_id").
		Where("l.account_id = ?", q.AccountID).
		Where(match, args...)
	if q.Cursor != "" {
		cur, err := decodeCursor(q.Cursor, validPersonKey)
		if err != nil {
			return nil, false, err
		}
		db = db.Where("("+personKindSQL+" > ? OR ("+personKindSQL+" = ? AND "+personKeySQL+" > ?))", cur.PersonKind, cur.PersonKind, cur.PersonKey)
	}
	var keys []personKey
	err := db.Select("DISTINCT " + personKindSQL + " AS person_kind, " + personKeySQL + " AS person_key").
		Order("person_kind, person_key").Limit(q.Limit + 1).Scan(&keys).Error
	if err != nil {
		return nil, false, fmt.Errorf("look people up: %w", err)
	}
	if len(keys) > q.Limit {
		return keys[:q.Limit], true, nil
	}
	return keys, false, nil
}

// peopleMatch is the condition a matching panel user meets, and its
// arguments. User input reaches LIKE only escaped, with "!" as the escape
// character, which means the same on MySQL and SQLite (a backslash does
// not: MySQL string literals give it a meaning of their own).
func peopleMatch(accountID, text string) (string, []any) {
	like := "%" + escapeLike(text) + "%"
	cond := "LOWER(pu.name) LIKE LOWER(?) ESCAPE '!'" +
		" OR LOWER(pu.email) LIKE LOWER(?) ESCAPE '!'" +
		" OR pu.external_id = ?" +
		" OR pu.login_id IN (SELECT lg.id FROM logins AS lg WHERE lg.account_id = ? AND LOWER(lg.name) LIKE LOWER(?) ESCAPE '!')"
	args := []any{like, like, text, accountID, like}
	if n, ok := userNumberText(text); ok {
		cond += " OR pu.user_number = ?"
		args = append(args, n)
	}
	return "(" + cond + ")", args
}

// escapeLike makes every character of s stand for itself in a LIKE
// pattern that declares ESCAPE '!'.
func escapeLike(s string) string {
	return strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(s)
}

// userNumberText reads text as a user number when it is all digits; "007"
// is user 7. Digits too many for an int name no user.
func userNumberText(text string) (int, bool) {
	if strings.TrimLeft(text, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(text)
	return n, err == nil
}

// usersOfPeople reads every panel user of the given people, up to one more
// than MaxPeopleRows, grouped by person in the order of their keys and
// then by location name.
func (s *Store) usersOfPeople(ctx context.Context, accountID string, keys []personKey) ([]PersonUser, error) {
	var logins, emails, ids []string
	for _, k := range keys {
		switch k.PersonKind {
		case 0:
			logins = append(logins, k.PersonKey)
		case 1:
			emails = append(emails, k.PersonKey)
		default:
			ids = append(ids, k.PersonKey)
		}
	}
	// Each branch mirrors one case of personKeySQL, so that every branch
	// can use its own index: login_id, email, or the primary key.
	var conds []string
	var args []any
	if len(logins) > 0 {
		conds = append(conds, "pu.login_id IN ?")
		args = append(args, logins)
	}
	if len(emails) > 0 {
		conds = append(conds, "(pu.login_id IS NULL AND pu.email IN ?)")
		args = append(args, emails)
	}
	if len(ids) > 0 {
		conds = append(conds, "(pu.login_id IS NULL AND pu.email = '' AND pu.id IN ?)")
		args = append(args, ids)
	}
	var users []PersonUser
	err := s.conn(ctx).Table("panel_users AS pu").
		Joins("JOIN locations AS l ON l.id = pu.location_id").
		Where("l.account_id = ?", accountID).
		Where("("+strings.Join(conds, " OR ")+")", args...).
		Select("pu.id, pu.location_id, l.name AS location_name, pu.user_number, pu.name, pu.email, pu.external_id, " +
			"pu.authority, pu.partitions, pu.has_code, pu.login_id, pu.received_at, pu.received_run_id, pu.updated_at, " +
			personKindSQL + " AS person_kind, " + personKeySQL + " AS person_key").
		Order("person_kind, person_key, l.name, l.id, pu.user_number").
		Limit(MaxPeopleRows + 1).Scan(&users).Error
	if err != nil {
		return nil, fmt.Errorf("load the people's panel users: %w", err)
	}
	return users, nil
}

// groupPeople makes one person of each run of users with the same key.
func groupPeople(users []PersonUser) []Person {
	var people []Person
	for i, u := range users {
		if i == 0 || u.PersonKind != users[i-1].PersonKind || u.PersonKey != users[i-1].PersonKey {
			people = append(people, Person{})
		}
		p := &people[len(people)-1]
		p.Users = append(p.Users, u)
	}
	for i := range people {
		describePerson(&people[i])
	}
	return people
}

// describePerson fills in what a person is known by from their users: the
// most recently received one gives the name, and e-mail and external id
// come from the most recent user that has one.
func describePerson(p *Person) {
	var latest, email, external *PersonUser
	for i := range p.Users {
		u := &p.Users[i]
		if u.LoginID != nil {
			p.LoginID = u.LoginID
		}
		if latest == nil || receivedLater(*u, *latest) {
			latest = u
		}
		if u.Email != "" && (email == nil || receivedLater(*u, *email)) {
			email = u
		}
		if u.ExternalID != "" && (external == nil || receivedLater(*u, *external)) {
			external = u
		}
	}
	p.Name = latest.Name
	if email != nil {
		p.Email = email.Email
	}
	if external != nil {
		id := external.ExternalID
		p.ExternalID = &id
	}
}

// receivedLater reports whether a run received a after b; a user never
// received counts as older than any received one, and between those the
// later change wins.
func receivedLater(a, b PersonUser) bool {
	switch {
	case a.ReceivedAt != nil && b.ReceivedAt != nil && !a.ReceivedAt.Equal(*b.ReceivedAt):
		return a.ReceivedAt.After(*b.ReceivedAt)
	case (a.ReceivedAt == nil) != (b.ReceivedAt == nil):
		return a.ReceivedAt != nil
	}
	return a.UpdatedAt.After(b.UpdatedAt)
}

// nameLinkedPeople names each linked person after their login. A login the
// account does not hold (which linking never makes) leaves the name the
// panels gave.
func (s *Store) nameLinkedPeople(ctx context.Context, accountID string, people []Person) error {
	var ids []string
	for _, p := range people {
		if p.LoginID != nil {
			ids = append(ids, *p.LoginID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var logins []Login
	if err := s.conn(ctx).Select("id", "name").Where("account_id = ? AND id IN ?", accountID, ids).Find(&logins).Error; err != nil {
		return fmt.Errorf("load linked logins: %w", err)
	}
	names := make(map[string]string, len(logins))
	for _, l := range logins {
		names[l.ID] = l.Name
	}
	for i := range people {
		if p := &people[i]; p.LoginID != nil {
			if name, ok := names[*p.LoginID]; ok {
				p.Name = name
			}
		}
	}
	return nil
}

// validPersonKey tells a cursor this server issued from a made-up one.
func validPersonKey(k personKey) bool {
	return k.PersonKind >= 0 && k.PersonKind <= 2 && k.PersonKey != ""
}
