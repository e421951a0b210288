package sim

import (
	"encoding/json"
	"fmt"

	"github.com/panelsync/panelsync/panel"
)

// execute runs one command against the panel's state and returns the data
// of its result, or the error the panel answers with.
func (p *Panel) execute(cmd panel.Frame) (any, *panel.CommandError) {
	switch cmd.Name {
	case panel.CmdUsersGet:
		var args panel.UsersGetArgs
		if err := decodeArgs(cmd.Args, &args); err != nil {
			return nil, invalidArgs(err)
		}
		res := p.state.usersGet(args)
		p.log.Debug("answered users.get", "full", res.Full, "users", len(res.Users), "removed", len(res.Removed))
		return res, nil
	case panel.CmdUsersPut:
		var args panel.UsersPutArgs
		if err := decodeArgs(cmd.Args, &args); err != nil {
			return nil, invalidArgs(err)
		}
		res, err := p.state.usersPut(args)
		if err != nil {
			return nil, invalidArgs(err)
		}
		refused := len(res.Refused())
		if refused > 0 {
			p.count(func(st *Stats) { st.UsersRefused += int64(refused) })
		}
		p.log.Debug("answered users.put", "users", len(args.Users), "removed", len(args.Removed), "refused", refused)
		return res, nil
	case panel.CmdConfigGet:
		return p.state.configCopy(), nil
	case panel.CmdStatusGet:
		return p.state.statusCopy(), nil
	}
	return nil, &panel.CommandError{Code: codeUnknownCommand, Message: fmt.Sprintf("unknown command %q", cmd.Name)}
}

// decodeArgs reads a command's arguments; absent arguments are the zero
// value.
func decodeArgs(raw json.RawMessage, into any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("arguments are not valid: %w", err)
	}
	return nil
}

func invalidArgs(err error) *panel.CommandError {
	return &panel.CommandError{Code: codeInvalidArgs, Message: err.Error()}
}
