package commands

// StepType is what a Step asks the front end to show.
type StepType string

// Kinds of Step, as a login flow goes through them.
const (
	// StepQR: draw Payload as a QR code (Text is its caption); each new QR
	// step replaces the last one shown.
	StepQR StepType = "qr"
	// StepCode: show Payload, a code to type on the user's phone, with
	// Text saying where.
	StepCode StepType = "code"
	// StepWaiting: the flow waits for the user; Text says for what.
	StepWaiting StepType = "waiting"
	// StepDone: the flow succeeded; Text says so ("" shows nothing). A
	// QR still shown is taken away.
	StepDone StepType = "done"
	// StepError: the flow ended without success; Text says why and what
	// to do. A QR still shown is taken away.
	StepError StepType = "error"
)

// Step is one step of a multi-step command (a login), as data: a front end
// renders it, a provisioning API can return it as is.
type Step struct {
	Type StepType `json:"type"`
	// Text is what the user reads.
	Text string `json:"text,omitempty"`
	// Payload is the QR code's content (StepQR) or the pairing code
	// (StepCode).
	Payload string `json:"payload,omitempty"`
}

// Final reports whether the flow ends with this step.
func (s Step) Final() bool { return s.Type == StepDone || s.Type == StepError }
