package sim

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/panel"
)

// putCodes returns each result's refusal code in order, "" for a user
// applied, so that a test states a whole answer in one line.
func putCodes(t *testing.T, res panel.UsersPutResult) []string {
	t.Helper()
	codes := make([]string, len(res.Results))
	for i, r := range res.Results {
		switch {
		case r.Status == panel.UserPutOK && r.Code == "" && r.Message == "":
		case r.Status == panel.UserPutRefused && r.Code != "" && r.Message != "":
			codes[i] = r.Code
		default:
			t.Fatalf("results[%d] = %+v: want ok without code and message, or refused with both", i, r)
		}
	}
	return codes
}

// stateForPut returns a panel's state without a link, for cases that need
// no wire: every users.put answer is the state's own.
func stateForPut(t *testing.T, serial string, opts Options) *state {
	t.Helper()
	if err := opts.Validate(); err != nil {
		t.Fatal(err)
	}
	return newState(serial, opts, "test-epoch")
}

func userByNumber(users []panel.User, number int) (panel.User, bool) {
	i := slices.IndexFunc(users, func(u panel.User) bool { return u.Number == number })
	if i < 0 {
		return panel.User{}, false
	}
	return users[i], true
}

func standardUser(number int, name string) panel.User {
	return panel.User{Number: number, Name: name, Authority: panel.AuthorityStandard, Partitions: []int{1}}
}

func TestUsersPut(t *testing.T) {
	t.Parallel()
	p, link, _ := linkedPanel(t, "SN-PUT", Options{Users: 6, Seed: 1})
	before := p.Users()
	start := p.Watermark()

	edited := before[1]
	edited.Name = "Edited Name"
	edited.Code = "" // the server never has codes
	edited.HasCode = true
	wantCode := before[1].Code
	newUser := panel.User{Number: 77, Name: "New Person", Authority: panel.AuthorityArmOnly, Partitions: []int{1}, HasCode: false}
	gone := before[3].Number

	args := panel.UsersPutArgs{Users: []panel.User{edited, newUser}, Removed: []int{gone}}
	var put panel.UsersPutResult
	link.callOK(t, panel.CmdUsersPut, args, &put)
	if put.Watermark != p.Watermark() || put.Watermark == start {
		t.Fatalf("put watermark = %q, want the panel's new watermark %q", put.Watermark, p.Watermark())
	}
	if err := put.Validate(args); err != nil {
		t.Fatalf("result does not match the request: %v", err)
	}
	if got := putCodes(t, put); !slices.Equal(got, []string{"", "", ""}) || put.Refused() != nil {
		t.Fatalf("results = %+v, want every user ok", put.Results)
	}

	var since panel.UsersGetResult
	link.callOK(t, panel.CmdUsersGet, panel.UsersGetArgs{Since: start}, &since)
	got := make([]int, 0, len(since.Users))
	for _, u := range since.Users {
		got = append(got, u.Number)
	}
	if !slices.Equal(got, []int{edited.Number, 77}) || !slices.Equal(since.Removed, []int{gone}) {
		t.Fatalf("changes since put = users %v removed %v; want [%d 77] and [%d]", got, since.Removed, edited.Number, gone)
	}
	if since.Users[0].Code != wantCode {
		t.Fatal("a user written with has_code and no code lost its code")
	}

	// Writing a user exactly as it is, or removing an empty slot, is
	// applied and changes nothing.
	unchanged := p.Watermark()
	link.callOK(t, panel.CmdUsersPut, panel.UsersPutArgs{Users: []panel.User{since.Users[1]}, Removed: []int{gone}}, &put)
	if put.Watermark != unchanged || put.Refused() != nil {
		t.Fatalf("identical put = %+v; want nothing refused and the watermark %q", put, unchanged)
	}
}

func TestUsersPut_InvalidUser_RefusedAloneOthersApplied(t *testing.T) {
	t.Parallel()
	p, link, _ := linkedPanel(t, "SN-PUT-INVALID", Options{Users: 6, Seed: 1})
	cases := map[string]panel.UsersPutArgs{
		"number 0":             {Users: []panel.User{{Number: 0, Name: "X", Authority: panel.AuthorityStandard}}},
		"number 10000":         {Users: []panel.User{{Number: 10000, Name: "X", Authority: panel.AuthorityStandard}}},
		"unknown authority":    {Users: []panel.User{{Number: 5, Name: "X", Authority: "boss"}}},
		"missing partition":    {Users: []panel.User{{Number: 5, Name: "X", Authority: panel.AuthorityGuest, Partitions: []int{99}}}},
		"letters in code":      {Users: []panel.User{{Number: 5, Name: "X", Authority: panel.AuthorityGuest, HasCode: true, Code: "12ab"}}},
		"removed out of range": {Removed: []int{-1}},
	}
	valid := 900
	for name, args := range cases {
		// The valid user in front of the bad one is applied all the same.
		valid++
		args.Users = append([]panel.User{standardUser(valid, "Valid")}, args.Users...)
		start := p.Watermark()
		var res panel.UsersPutResult
		link.callOK(t, panel.CmdUsersPut, args, &res)
		if got := putCodes(t, res); !slices.Equal(got, []string{"", panel.RefusedInvalid}) {
			t.Errorf("%s: codes %q, want the valid user ok and the bad one invalid", name, got)
			continue
		}
		if msg := res.Results[1].Message; strings.Contains(msg, "12ab") {
			t.Errorf("%s: message %q repeats the code", name, msg)
		}
		if _, ok := userByNumber(p.Users(), valid); !ok || res.Watermark == start {
			t.Errorf("%s: the valid user %d was not applied", name, valid)
		}
	}
}

func TestUsersPut_MixedBatch_AppliesOnlyTheGoodUsers(t *testing.T) {
	t.Parallel()
	p, link, _ := linkedPanel(t, "SN-PUT-MIXED", Options{Users: 6, Seed: 1, ProtectedUsers: []int{1, 2}})
	before := p.Users()
	start := p.Watermark()

	edited := before[2]
	edited.Name = "Edited Name"
	edited.Code, edited.HasCode = "", true
	master := before[0]
	master.Name = "Not The Master Any More"
	added := standardUser(41, "New Person")
	gone := before[3].Number
	args := panel.UsersPutArgs{
		Users: []panel.User{
			edited,
			{Number: 40, Name: "Boss", Authority: "boss"},
			master,
			added,
			{Number: 42, Name: "Bad Code", Authority: panel.AuthorityGuest, HasCode: true, Code: "12ab"},
			{Number: 0, Name: "Zero", Authority: panel.AuthorityStandard},
		},
		Removed: []int{gone, 2, 10000},
	}
	var res panel.UsersPutResult
	link.callOK(t, panel.CmdUsersPut, args, &res)
	if err := res.Validate(args); err != nil {
		t.Fatalf("result does not match the request: %v", err)
	}
	want := []string{"", panel.RefusedInvalid, panel.RefusedProtected, "", panel.RefusedInvalid, panel.RefusedInvalid, "", panel.RefusedProtected, panel.RefusedInvalid}
	if got := putCodes(t, res); !slices.Equal(got, want) {
		t.Fatalf("codes = %q, want %q", got, want)
	}
	refused := res.Refused()
	var refusedNumbers []int
	for _, r := range refused {
		refusedNumbers = append(refusedNumbers, r.Number)
	}
	if !slices.Equal(refusedNumbers, []int{40, 1, 42, 0, 2, 10000}) {
		t.Fatalf("Refused() = %v, want users 40, 1, 42, 0, 2 and 10000 in request order", refusedNumbers)
	}
	if refused[1].Message != "user 1 is protected on the panel" || refused[4].Message != "user 2 is protected on the panel" {
		t.Fatalf("protected messages = %q and %q", refused[1].Message, refused[4].Message)
	}
	if strings.Contains(refused[2].Message, "12ab") {
		t.Fatal("the refusal repeats the code it refused")
	}
	if res.Watermark == start || res.Watermark != p.Watermark() {
		t.Fatalf("watermark %q, want the panel's new one %q", res.Watermark, p.Watermark())
	}

	// users.get reads back exactly what was applied: the edit, the new
	// user and the removal, nothing refused.
	expected := slices.Clone(before)
	expected[2].Name = edited.Name
	expected = slices.DeleteFunc(expected, func(u panel.User) bool { return u.Number == gone })
	expected = append(expected, cloneUser(added))
	var full panel.UsersGetResult
	link.callOK(t, panel.CmdUsersGet, panel.UsersGetArgs{Full: true}, &full)
	if !slices.EqualFunc(full.Users, expected, usersEqual) {
		t.Fatalf("users after the put =\n%+v\nwant\n%+v", full.Users, expected)
	}
	var since panel.UsersGetResult
	link.callOK(t, panel.CmdUsersGet, panel.UsersGetArgs{Since: start}, &since)
	if len(since.Users) != 2 || since.Users[0].Number != edited.Number || since.Users[1].Number != 41 || !slices.Equal(since.Removed, []int{gone}) {
		t.Fatalf("changes since the put = %+v, want users %d and 41 and removed %d", since, edited.Number, gone)
	}
	if n := p.Stats().UsersRefused; n != 6 {
		t.Fatalf("stats count %d users refused, want 6", n)
	}
}

func TestUsersPut_ProtectedUsers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		protected []int
		args      panel.UsersPutArgs
		want      []string
	}{
		{
			name: "user 1 by default",
			args: panel.UsersPutArgs{Users: []panel.User{standardUser(1, "A"), standardUser(2, "B")}},
			want: []string{panel.RefusedProtected, ""},
		},
		{
			name: "removing user 1 by default",
			args: panel.UsersPutArgs{Removed: []int{1, 2}},
			want: []string{panel.RefusedProtected, ""},
		},
		{
			name:      "an empty list protects no one",
			protected: []int{},
			args:      panel.UsersPutArgs{Users: []panel.User{standardUser(1, "A")}, Removed: []int{2}},
			want:      []string{"", ""},
		},
		{
			name:      "chosen numbers, present or not",
			protected: []int{3, 9000},
			args:      panel.UsersPutArgs{Users: []panel.User{standardUser(1, "A"), standardUser(9000, "Z")}, Removed: []int{3}},
			want:      []string{"", panel.RefusedProtected, panel.RefusedProtected},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := stateForPut(t, "SN-PROTECTED", Options{Users: 6, Seed: 1, ProtectedUsers: c.protected})
			before := s.usersCopy()
			res, err := s.usersPut(c.args)
			if err != nil {
				t.Fatal(err)
			}
			if got := putCodes(t, res); !slices.Equal(got, c.want) {
				t.Fatalf("codes = %q, want %q", got, c.want)
			}
			after := s.usersCopy()
			for _, r := range res.Refused() {
				was, had := userByNumber(before, r.Number)
				is, has := userByNumber(after, r.Number)
				if had != has || !usersEqual(was, is) {
					t.Fatalf("protected user %d changed", r.Number)
				}
			}
		})
	}
}

func TestUsersPut_PutFailureRate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		rate float64
		want []string
	}{
		{rate: 1, want: []string{panel.RefusedDeviceError, panel.RefusedDeviceError, panel.RefusedDeviceError}},
		{rate: 0, want: []string{"", "", ""}},
	} {
		t.Run(fmt.Sprint("rate ", c.rate), func(t *testing.T) {
			t.Parallel()
			p, link, _ := linkedPanel(t, "SN-PUT-FAIL", Options{Users: 6, Seed: 1, PutFailureRate: c.rate})
			before, start := p.Users(), p.Watermark()
			edited := before[2]
			edited.Name = "Edited Name"
			args := panel.UsersPutArgs{Users: []panel.User{edited, standardUser(41, "New Person")}, Removed: []int{before[3].Number}}
			var res panel.UsersPutResult
			link.callOK(t, panel.CmdUsersPut, args, &res)
			if got := putCodes(t, res); !slices.Equal(got, c.want) {
				t.Fatalf("codes = %q, want %q", got, c.want)
			}
			if c.rate == 0 {
				return
			}
			for _, r := range res.Results {
				if r.Message != "the panel did not store the user" {
					t.Fatalf("device_error message = %q", r.Message)
				}
			}
			if res.Watermark != start || p.Watermark() != start || !slices.EqualFunc(p.Users(), before, usersEqual) {
				t.Fatal("a put that stored no user changed the panel or its watermark")
			}
		})
	}
}

func TestUsersPut_PutFailureRate_SeededPerUser(t *testing.T) {
	t.Parallel()
	opts := Options{Users: 6, Seed: 5, PutFailureRate: 0.5}
	var args panel.UsersPutArgs
	for n := 100; n < 300; n++ {
		args.Users = append(args.Users, standardUser(n, fmt.Sprint("Person ", n)))
	}
	first, err := stateForPut(t, "SN-SEEDED", opts).usersPut(args)
	if err != nil {
		t.Fatal(err)
	}
	again, err := stateForPut(t, "SN-SEEDED", opts).usersPut(args)
	if err != nil {
		t.Fatal(err)
	}
	codes := putCodes(t, first)
	if !slices.Equal(codes, putCodes(t, again)) {
		t.Fatal("the same serial and seed refused different users")
	}
	if refused := len(first.Refused()); refused < 50 || refused > 150 {
		t.Fatalf("%d of 200 users refused at rate 0.5", refused)
	}
}

func TestUsersPut_FullPanel_RefusesOnlyUsersThatDoNotFit(t *testing.T) {
	t.Parallel()
	s := stateForPut(t, "SN-FULL", Options{Users: MaxUsers, Seed: 1})
	before := s.usersCopy()
	existing := before[len(before)-1]
	existing.Name = "Still Fits"
	// The removal frees the slot the first new user takes; the second new
	// user finds none, while changing a user already there needs no slot.
	res, err := s.usersPut(panel.UsersPutArgs{
		Users:   []panel.User{standardUser(9001, "Fits"), standardUser(9002, "Does Not Fit"), existing},
		Removed: []int{before[5].Number},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := putCodes(t, res), []string{"", panel.RefusedFull, "", ""}; !slices.Equal(got, want) {
		t.Fatalf("codes = %q, want %q", got, want)
	}
	users := s.usersCopy()
	_, fits := userByNumber(users, 9001)
	_, overflows := userByNumber(users, 9002)
	if len(users) != MaxUsers || !fits || overflows {
		t.Fatalf("the panel holds %d users after the put; want %d with 9001 and without 9002", len(users), MaxUsers)
	}
}

func TestUsersPut_BadCommand_RefusedWholeAndChangesNothing(t *testing.T) {
	t.Parallel()
	p, link, _ := linkedPanel(t, "SN-PUT-BAD", Options{Users: 6, Seed: 1})
	tooMany := panel.UsersPutArgs{Removed: []int{1000}}
	for n := range panel.MaxUsersPerPut {
		tooMany.Users = append(tooMany.Users, standardUser(2000+n, fmt.Sprint("Person ", n)))
	}
	dup := standardUser(77, "Twice")
	cases := map[string]struct {
		args any
		want string
	}{
		"more than MaxUsersPerPut": {tooMany, fmt.Sprintf("at most %d users", panel.MaxUsersPerPut)},
		"duplicate number":         {panel.UsersPutArgs{Users: []panel.User{dup, dup}}, "listed twice"},
		"written and removed":      {panel.UsersPutArgs{Users: []panel.User{dup}, Removed: []int{77}}, "both written and removed"},
		"malformed arguments":      {[]int{1, 2}, "arguments are not valid"},
	}
	start := p.Watermark()
	for name, c := range cases {
		e := link.callErr(t, panel.CmdUsersPut, c.args)
		if e.Code != "invalid_args" || !strings.Contains(e.Message, c.want) {
			t.Errorf("%s: error = %+v, want invalid_args saying %q", name, e, c.want)
		}
	}
	if p.Watermark() != start || len(p.Users()) != 6 {
		t.Fatal("a users.put refused as a whole changed the panel")
	}

	// Exactly MaxUsersPerPut is within the bound.
	tooMany.Removed = nil
	var res panel.UsersPutResult
	link.callOK(t, panel.CmdUsersPut, tooMany, &res)
	if len(res.Results) != panel.MaxUsersPerPut || res.Refused() != nil {
		t.Fatalf("a put of %d users answered %d results, %d refused", panel.MaxUsersPerPut, len(res.Results), len(res.Refused()))
	}
}
