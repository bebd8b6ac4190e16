package identity_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/identity"
)

// TestRoutingTable walks every combination of linked or not × on WhatsApp
// or not × SMS available × the sender's `sms` × the linked person's
// `prefer`, against the rules written out independently here.
func TestRoutingTable(t *testing.T) {
	prefs := []bridge.NetworkID{"", bridge.NetworkMatrix, bridge.NetworkWhatsApp, bridge.NetworkSMS}
	bools := []bool{false, true}
	cases := 0
	for _, linked := range bools {
		for _, own := range bools {
			if own && !linked {
				continue
			}
			for _, onWA := range bools {
				for _, smsAvail := range bools {
					for _, senderSMS := range bools {
						for _, prefer := range prefs {
							if !linked && prefer != "" {
								continue // only a linked person has a say
							}
							in := identity.RouteInput{Linked: linked, LinkedToSender: own, Prefer: prefer,
								SMSAvailable: smsAvail, SenderSMS: senderSMS}
							if onWA {
								in.Reachable = []bridge.NetworkID{bridge.NetworkWhatsApp}
							}
							cases++
							t.Run(fmt.Sprintf("%+v", in), func(t *testing.T) {
								got := identity.Decide(in)
								want := expected(in)
								require.Equal(t, want.Native, got.Native)
								require.Equal(t, want.Network, got.Network)
								require.ErrorIs(t, got.Err, want.Err)
								if got.Err == nil {
									require.NotEmpty(t, got.Network)
								}
								if got.Network == bridge.NetworkSMS {
									require.True(t, in.SenderSMS, "SMS never without the sender's opt-in")
								}
								if linked && !own && got.Network != bridge.NetworkMatrix {
									require.Equal(t, prefer, got.Network, "a linked person leaves Matrix only by their own preference")
								}
							})
						}
					}
				}
			}
		}
	}
	require.Equal(t, 2*2*2*1+ /* unlinked */ 2*2*2*4*2 /* linked, own or not */, cases)
}

type want struct {
	Network bridge.NetworkID
	Native  bool
	Err     error
}

func expected(in identity.RouteInput) want {
	if in.LinkedToSender {
		return want{Err: identity.ErrOwnNumber}
	}
	if in.Linked {
		if in.Prefer == bridge.NetworkWhatsApp && len(in.Reachable) > 0 {
			return want{Network: bridge.NetworkWhatsApp}
		}
		if in.Prefer == bridge.NetworkSMS && in.SMSAvailable && in.SenderSMS {
			return want{Network: bridge.NetworkSMS}
		}
		return want{Network: bridge.NetworkMatrix, Native: true}
	}
	if len(in.Reachable) > 0 {
		return want{Network: bridge.NetworkWhatsApp}
	}
	if in.SMSAvailable {
		if in.SenderSMS {
			return want{Network: bridge.NetworkSMS}
		}
		return want{Err: identity.ErrSMSNotOptedIn}
	}
	return want{Err: identity.ErrUnreachable}
}
