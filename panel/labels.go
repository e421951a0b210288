package panel

import (
	"fmt"
	"strings"
)

// The functions below word what a panel reports for people: Event Log
// messages, refusals and report mails say "armed away", never
// "armed_away".

// ArmedStateLabel words an arm state, such as "armed away".
func ArmedStateLabel(state string) string {
	switch state {
	case ArmDisarmed:
		return "disarmed"
	case ArmStay:
		return "armed stay"
	case ArmAway:
		return "armed away"
	case ArmNight:
		return "armed night"
	case ArmPartially:
		return "partly armed"
	case ArmUnknown, "":
		return "in an unknown arm state"
	}
	return strings.ReplaceAll(state, "_", " ")
}

// TroubleLabel words a trouble a panel reports. Panels name the common
// ones with a code; anything else is shown as the panel sent it.
func TroubleLabel(trouble string) string {
	switch trouble {
	case "ac_failure":
		return "AC power failure"
	case "low_battery":
		return "low battery"
	case "tamper":
		return "tamper"
	case "communication":
		return "communication failure"
	}
	return strings.ReplaceAll(trouble, "_", " ")
}

// StatusSummary words a panel's status, such as "disarmed, no troubles"
// or "armed away, 1 trouble: AC power failure, 2 zones faulted".
func StatusSummary(st Status) string {
	s := ArmedStateLabel(st.ArmedState())
	switch n := len(st.Troubles); n {
	case 0:
		s += ", no troubles"
	default:
		labels := make([]string, n)
		for i, t := range st.Troubles {
			labels[i] = TroubleLabel(t)
		}
		noun := "troubles"
		if n == 1 {
			noun = "trouble"
		}
		s += fmt.Sprintf(", %d %s: %s", n, noun, strings.Join(labels, ", "))
	}
	switch n := len(st.ZoneFaults); n {
	case 0:
	case 1:
		s += ", 1 zone faulted"
	default:
		s += fmt.Sprintf(", %d zones faulted", n)
	}
	return s
}
