package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
)

// pushRounds bounds the put-and-read-back rounds of one attempt. The
// second round catches what the record did not know (a user added at the
// keypad since the last sync) and what the panel did not keep as sent;
// what is still wrong after it is reported, not retried for ever.
const pushRounds = 2

// Run error codes of a push.
const (
	// FailUsersRefused: the panel refused or did not keep some users; the
	// others were applied.
	FailUsersRefused = "users_refused"
)

// Actions of a push's per-user entries in a run's changes.
const (
	// changeFailed: the panel refused the user, or did not keep it as
	// sent; Code and Message say why.
	changeFailed = "failed"
	// changeCodeMissing: the user is on the panel without a code it had:
	// a re-apply put it back without one, as panels' codes are known here
	// only as digests, or the panel had lost the code on record (the user
	// or its code was removed there since the last sync) and the list gave
	// no code to send.
	changeCodeMissing = "code_missing"
)

// desiredUser is one user as a push means to leave it on the panel.
type desiredUser struct {
	user panel.User
	// code is the PIN to send, or "" to send none.
	code   string
	digest string
	// keepCode: the user keeps whatever code the panel has, so has_code is
	// not compared.
	keepCode bool
}

// pushPlan is what an import or re-apply means to do at one location.
type pushPlan struct {
	// full says the list is the location's whole list: users it does not
	// hold are removed. A propagation lists only the people it adds.
	full      bool
	desired   map[int]desiredUser
	numbers   []int
	protected map[int]bool
	// diff is the change to the record the run stands for, which the
	// safety threshold judges.
	diff        usersDiff
	write       []int
	remove      []int
	codeMissing []int
}

// importUsers executes an import or re-apply run: it compares the list
// with the record and holds it for a person when it changes too much (or
// automatic apply is off), unless a person approved it; otherwise it
// pushes the differences (or every user, with force update of all
// records) in users.put chunks, reads the panel back and verifies it, and
// records what the panel confirmed.
func (e *Engine) importUsers(ctx context.Context, r models.Run, loc models.LocationView) (attemptOutcome, error) {
	work, err := e.store.RunWork(ctx, r.ID)
	if err != nil {
		return attemptOutcome{}, err
	}
	var want UsersData
	if err := json.Unmarshal(work.Data, &want); err != nil {
		return attemptOutcome{}, &runError{code: "internal", message: "the run's user list is unreadable", permanent: true}
	}
	codes, err := e.openCodes(work.Codes)
	if err != nil {
		return attemptOutcome{}, err
	}
	defer clear(codes)
	existing, err := e.store.PanelUsers(ctx, loc.Location.ID)
	if err != nil {
		return attemptOutcome{}, err
	}
	linked, err := e.store.SavedLinksAt(ctx, loc.Location.ID)
	if err != nil {
		return attemptOutcome{}, err
	}
	plan := e.planPush(loc.Location, want, codes, existing, linked)
	if r.ApprovedBy == "" {
		if reason := holdReason(loc.Location, len(existing), plan.diff.counts); reason != "" {
			changes, _ := json.Marshal(Changes{Counts: plan.diff.counts, Changes: plan.diff.changes})
			held := applied{counts: plan.diff.counts, changes: changes, summary: plan.diff.counts.String(), hold: reason}
			return attemptOutcome{mode: models.ModeFull, apply: func(context.Context) (applied, error) { return held, nil }}, nil
		}
	}

	refused := map[int]panel.UserPutResult{}
	write, remove := plan.write, plan.remove
	var back panelUsers
	for round := 1; ; round++ {
		if len(write)+len(remove) > 0 {
			if err := e.putUsers(ctx, loc.Panel.ID, plan, write, remove, refused); err != nil {
				return attemptOutcome{}, err
			}
		}
		if back, err = e.readPanelUsers(ctx, loc.Location.ID, loc.Panel.ID); err != nil {
			return attemptOutcome{}, err
		}
		write, remove = plan.residual(back, refused)
		if len(write)+len(remove) == 0 || round == pushRounds {
			break
		}
	}
	unconfirmed := append(write, remove...)
	slices.Sort(unconfirmed)
	lost := plan.codesLost(back, refused, unconfirmed)

	// The record takes the panel as read back: what it confirmed, and
	// nothing it did not. Users the list names keep their external ids
	// only where the panel holds them as listed.
	confirmedIDs := map[int]string{}
	for n, id := range want.ExternalIDs {
		if _, failed := refused[n]; !failed && !slices.Contains(unconfirmed, n) && back.has(n) {
			confirmedIDs[n] = id
		}
	}
	kept := UsersData{Full: true, Watermark: back.watermark, Users: back.users, ExternalIDs: confirmedIDs}
	return attemptOutcome{
		mode: models.ModeFull,
		apply: func(ctx context.Context) (applied, error) {
			current, err := e.store.PanelUsers(ctx, loc.Location.ID)
			if err != nil {
				return applied{}, err
			}
			res, err := e.applyUsers(ctx, loc, r.ID, models.ModeFull, kept, back.digests, current)
			if err != nil {
				return applied{}, err
			}
			return plan.finish(res, refused, unconfirmed, lost)
		},
	}, nil
}

// planPush works out what a list means for the panel at a location.
// A linked person's options may leave their code, schedule or partitions
// out of every push: those keep what the record says the panel has.
func (e *Engine) planPush(loc models.Location, want UsersData, codes map[int]string, existing []models.PanelUser, linked map[int]models.Link) pushPlan {
	p := pushPlan{full: want.Full, desired: make(map[int]desiredUser, len(want.Users)), protected: map[int]bool{}}
	for _, n := range want.Protected {
		p.protected[n] = true
	}
	onRecord := make(map[int]models.PanelUser, len(existing))
	var guarded []models.PanelUser
	for _, u := range existing {
		onRecord[u.UserNumber] = u
		if !p.protected[u.UserNumber] {
			guarded = append(guarded, u)
		}
	}
	list := UsersData{Full: want.Full, ExternalIDs: want.ExternalIDs}
	digests := map[int]string{}
	for _, u := range want.Users {
		if p.protected[u.Number] {
			continue
		}
		u.Code = ""
		d := desiredUser{user: u}
		old, known := onRecord[u.Number]
		code := codes[u.Number]
		if l, ok := linked[u.Number]; ok {
			if !l.SyncCode {
				code = ""
			}
			if !l.SyncSchedule && known {
				d.user.AccessSchedule = old.AccessSchedule
			}
			if !l.SyncPartitions && known {
				d.user.Partitions = splitInts(old.Partitions)
			}
		}
		switch {
		case code != "":
			d.code, d.digest = code, e.codeDigest(loc.ID, u.Number, code)
			d.user.HasCode = true
			digests[u.Number] = d.digest
		case want.KeepUnsetCodes || (u.HasCode && known && old.HasCode) || !linked[u.Number].SyncCode && linked[u.Number].ID != "":
			// The panel keeps the code it has; the record's view of it
			// stands for the comparison.
			d.keepCode = true
			d.user.HasCode = known && old.HasCode
		case u.HasCode:
			// A panel's code is known here only as a digest: it cannot be
			// put back.
			d.user.HasCode = false
			p.codeMissing = append(p.codeMissing, u.Number)
		}
		p.desired[u.Number] = d
		p.numbers = append(p.numbers, u.Number)
		list.Users = append(list.Users, d.user)
	}
	slices.Sort(p.numbers)
	p.diff = diffUsers(loc.ID, guarded, list, digests)
	if loc.ForceUpdateAll {
		p.write = slices.Clone(p.numbers)
	} else {
		for _, rows := range [][]models.PanelUser{p.diff.insert, p.diff.update} {
			for _, row := range rows {
				p.write = append(p.write, row.UserNumber)
			}
		}
		slices.Sort(p.write)
	}
	p.remove = slices.Clone(p.diff.remove)
	return p
}

// putUsers sends the users to write and to remove in users.put chunks,
// noting each user the panel refused.
func (e *Engine) putUsers(ctx context.Context, panelID string, plan pushPlan, write, remove []int, refused map[int]panel.UserPutResult) error {
	for len(write)+len(remove) > 0 {
		var args panel.UsersPutArgs
		for len(write) > 0 && len(args.Users) < panel.MaxUsersPerPut {
			d := plan.desired[write[0]]
			u := d.user
			u.Code = d.code
			if d.keepCode {
				u.HasCode = true
			}
			args.Users = append(args.Users, u)
			write = write[1:]
		}
		for len(remove) > 0 && len(args.Users)+len(args.Removed) < panel.MaxUsersPerPut {
			args.Removed = append(args.Removed, remove[0])
			remove = remove[1:]
		}
		raw, err := e.send(ctx, panelID, panel.CmdUsersPut, args)
		clearCodes(args.Users)
		if err != nil {
			return err
		}
		var res panel.UsersPutResult
		if err := json.Unmarshal(raw, &res); err != nil {
			return invalidAnswer("users.put", err)
		}
		if err := res.Validate(args); err != nil {
			return invalidAnswer("users.put", err)
		}
		for _, f := range res.Refused() {
			refused[f.Number] = f
		}
	}
	return nil
}

// clearCodes wipes the codes a put carried once it is sent.
func clearCodes(users []panel.User) {
	for i := range users {
		users[i].Code = ""
	}
}

// panelUsers is a panel's users as read back, codes turned into digests.
type panelUsers struct {
	watermark string
	users     []panel.User
	digests   map[int]string
	byNumber  map[int]int
}

func (p panelUsers) has(n int) bool { _, ok := p.byNumber[n]; return ok }

// readPanelUsers reads every user of the panel, for verifying a push.
func (e *Engine) readPanelUsers(ctx context.Context, locationID, panelID string) (panelUsers, error) {
	raw, err := e.send(ctx, panelID, panel.CmdUsersGet, panel.UsersGetArgs{Full: true})
	if err != nil {
		return panelUsers{}, err
	}
	var res panel.UsersGetResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return panelUsers{}, invalidAnswer("users", err)
	}
	if err := validateUsers(res); err != nil {
		return panelUsers{}, invalidAnswer("users", err)
	}
	if !res.Full {
		return panelUsers{}, invalidAnswer("users", fmt.Errorf("a full read was answered with changes only"))
	}
	out := panelUsers{watermark: res.Watermark, users: res.Users, digests: map[int]string{}, byNumber: make(map[int]int, len(res.Users))}
	for i, u := range res.Users {
		if u.Code != "" {
			out.digests[u.Number] = e.codeDigest(locationID, u.Number, u.Code)
			u.HasCode = true
		}
		u.Code = ""
		u.Email = models.NormalizeEmail(u.Email)
		u.Name = strings.TrimSpace(u.Name)
		out.users[i] = u
		out.byNumber[u.Number] = i
	}
	return out, nil
}

// residual is what the panel still lacks of the plan after a put: users
// not as listed, and users it holds that the list does not, leaving
// protected users and those the panel refused alone.
func (p pushPlan) residual(back panelUsers, refused map[int]panel.UserPutResult) (write, remove []int) {
	for _, n := range p.numbers {
		if _, no := refused[n]; no {
			continue
		}
		i, ok := back.byNumber[n]
		if !ok || !p.desired[n].matches(back.users[i], back.digests[n]) {
			write = append(write, n)
		}
	}
	for _, u := range back.users {
		if !p.full {
			break
		}
		if _, listed := p.desired[u.Number]; listed || p.protected[u.Number] {
			continue
		}
		if _, no := refused[u.Number]; no {
			continue
		}
		remove = append(remove, u.Number)
	}
	return write, remove
}

// matches reports whether the panel holds the user as the push meant.
func (d desiredUser) matches(got panel.User, gotDigest string) bool {
	want := d.user
	switch {
	case got.Name != want.Name, got.Email != want.Email, got.Authority != want.Authority, got.AccessSchedule != want.AccessSchedule:
		return false
	case joinInts(got.Partitions) != joinInts(want.Partitions):
		return false
	case !d.keepCode && got.HasCode != want.HasCode:
		return false
	case d.code != "" && gotDigest != "" && gotDigest != d.digest:
		// A panel that discloses codes must hold the one sent.
		return false
	}
	return true
}

// codesLost lists the users the push meant to keep the code the record
// shows them with, but that the panel holds without one when read back.
// A user listed without a code keeps only a code the panel has, so a user
// removed at the panel since the last sync is put back without one, and a
// user whose code was deleted there stays without one. The record then
// takes has_code false from the panel, an update the list did not ask for
// and a held run's preview could not show, so the run says why.
func (p pushPlan) codesLost(back panelUsers, refused map[int]panel.UserPutResult, unconfirmed []int) []int {
	var lost []int
	for _, n := range p.numbers {
		d := p.desired[n]
		if !d.keepCode || !d.user.HasCode {
			continue
		}
		if _, no := refused[n]; no || slices.Contains(unconfirmed, n) {
			continue
		}
		if i, ok := back.byNumber[n]; ok && !back.users[i].HasCode {
			lost = append(lost, n)
		}
	}
	return lost
}

// finish completes what applying the read-back changed with the users
// that failed and those that came back without a code, and says whether
// the run failed.
func (p pushPlan) finish(res applied, refused map[int]panel.UserPutResult, unconfirmed, lost []int) (applied, error) {
	var out Changes
	if err := json.Unmarshal(res.changes, &out); err != nil {
		return applied{}, err
	}
	failed := 0
	numbers := make([]int, 0, len(refused))
	for n := range refused {
		numbers = append(numbers, n)
	}
	slices.Sort(numbers)
	var reasons []string
	for _, n := range numbers {
		f := refused[n]
		msg := f.Message
		if msg == "" {
			msg = "the panel refused the user (" + f.Code + ")"
		}
		out.Changes = append(out.Changes, Change{Action: changeFailed, Number: n, Name: p.desired[n].user.Name, Code: f.Code, Message: msg})
		failed++
		if len(reasons) < 3 {
			reasons = append(reasons, fmt.Sprintf("user %d: %s", n, f.Code))
		}
	}
	for _, n := range unconfirmed {
		out.Changes = append(out.Changes, Change{Action: changeFailed, Number: n, Name: p.desired[n].user.Name, Code: "not_confirmed",
			Message: "the panel did not hold the user as sent when read back"})
		failed++
		if len(reasons) < 3 {
			reasons = append(reasons, fmt.Sprintf("user %d: not confirmed", n))
		}
	}
	for _, n := range p.codeMissing {
		out.Changes = append(out.Changes, Change{Action: changeCodeMissing, Number: n, Name: p.desired[n].user.Name,
			Message: "put back without a code: panels' codes are kept here only as digests, so this user needs a new code"})
	}
	for _, n := range lost {
		out.Changes = append(out.Changes, Change{Action: changeCodeMissing, Number: n, Name: p.desired[n].user.Name,
			Message: "the record showed a code, but the panel had none when read back: the user or its code was removed at the panel " +
				"since the last sync, and a user listed without a code keeps only the code the panel has, so this user needs a new code"})
	}
	changes, err := json.Marshal(out)
	if err != nil {
		return applied{}, err
	}
	res.changes = changes
	if needCode := len(p.codeMissing) + len(lost); needCode > 0 {
		res.summary += "; " + needCodeSummary(needCode, len(lost))
		res.note = map[string]any{"code_missing": needCode}
	}
	if failed > 0 {
		more := ""
		if failed > len(reasons) {
			more = ", …"
		}
		res.failed = &runError{code: FailUsersRefused, permanent: true,
			message: fmt.Sprintf("the panel did not take %d %s (%s%s); the rest were applied",
				failed, pluralUsers(failed, "user", "users"), strings.Join(reasons, ", "), more)}
		if res.note == nil {
			res.note = map[string]any{}
		}
		res.note["failed_users"] = failed
	}
	return res, nil
}

// needCodeSummary says how many users need a new code, and how many of
// them because the panel had lost the code on record: that is why an
// applied import can list more updates than its preview did.
func needCodeSummary(needCode, lost int) string {
	out := fmt.Sprintf("%d %s a new code", needCode, pluralUsers(needCode, "user needs", "users need"))
	switch {
	case lost == 0:
		return out
	case lost == needCode:
		return out + ": the panel no longer had the " + pluralUsers(lost, "code", "codes") + " on record"
	}
	return out + fmt.Sprintf(" (%d because the panel no longer had the %s on record)", lost, pluralUsers(lost, "code", "codes"))
}

func pluralUsers(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
