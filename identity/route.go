package identity

import (
	"slices"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// RouteInput is what routing a phone number depends on.
type RouteInput struct {
	// Linked is true when a person verified and linked the number.
	Linked bool
	// LinkedToSender is true when the sender themselves linked it.
	LinkedToSender bool
	// Prefer is the linked person's preferred network ("" = none).
	Prefer bridge.NetworkID
	// Reachable lists the end-to-end encrypted phone networks (WhatsApp)
	// that are enabled and reach the number, best first.
	Reachable []bridge.NetworkID
	// SMSAvailable is true when SMS is enabled and may send to the number.
	SMSAvailable bool
	// SenderSMS is true when the sender said `sms on`.
	SenderSMS bool
}

// RouteDecision is where a chat with a number goes.
type RouteDecision struct {
	// Network carries the chat; Native means a plain Matrix room with the
	// linked person's own account (no bridging hop).
	Network bridge.NetworkID
	Native  bool
	// Err is set, with the reason, when the number cannot be reached.
	Err error
}

// Decide routes a chat to a phone number: a Matrix account linked to it
// (natively, end-to-end encrypted) unless the linked person prefers another
// network that can carry the chat; else WhatsApp if the number is on it;
// else SMS, only if the sender opted in; else a refusal with the reason.
func Decide(in RouteInput) RouteDecision {
	native := RouteDecision{Network: bridge.NetworkMatrix, Native: true}
	switch {
	case in.LinkedToSender:
		return RouteDecision{Err: ErrOwnNumber}
	case in.Linked:
		switch in.Prefer {
		case bridge.NetworkWhatsApp:
			if slices.Contains(in.Reachable, bridge.NetworkWhatsApp) {
				return RouteDecision{Network: bridge.NetworkWhatsApp}
			}
		case bridge.NetworkSMS:
			// SMS is not encrypted: only with the sender's consent too.
			if in.SMSAvailable && in.SenderSMS {
				return RouteDecision{Network: bridge.NetworkSMS}
			}
		}
		return native
	case len(in.Reachable) > 0:
		return RouteDecision{Network: in.Reachable[0]}
	case in.SMSAvailable && in.SenderSMS:
		return RouteDecision{Network: bridge.NetworkSMS}
	case in.SMSAvailable:
		return RouteDecision{Err: ErrSMSNotOptedIn}
	}
	return RouteDecision{Err: ErrUnreachable}
}
