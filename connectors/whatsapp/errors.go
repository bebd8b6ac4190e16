package whatsapp

import "errors"

// scrubbedError is an error from whatsmeow whose text has its JIDs and
// numbers redacted (see scrub); errors.Is and As still see the original.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrubErr wraps err so that its text names no JID or number.
func scrubErr(err error) error {
	if err == nil {
		return nil
	}
	var s *scrubbedError
	if errors.As(err, &s) && s == err {
		return err
	}
	return &scrubbedError{msg: scrub(err.Error()), err: err}
}

var (
	// ErrNotConfigured is the answer to WhatsApp commands when
	// whatsapp.enabled is false.
	ErrNotConfigured = errors.New("WhatsApp is not configured on this bridge (whatsapp.enabled is false)")
	// ErrNotLoggedIn means neither the user's own WhatsApp login nor the
	// relay account can carry a chat.
	ErrNotLoggedIn = errors.New("no WhatsApp account is logged in for this chat: log in with `login whatsapp`, or ask an admin to log in the relay account")
	// ErrNotOnWhatsApp means a number has no WhatsApp account.
	ErrNotOnWhatsApp = errors.New("that number is not on WhatsApp")
	// ErrInvalidNumber means a string is not an E.164 phone number.
	ErrInvalidNumber = errors.New("not a valid phone number in international form (+ and digits)")
	// ErrUnknownChat means a ChatID names no WhatsApp chat this bridge knows.
	ErrUnknownChat = errors.New("unknown WhatsApp chat")
	// ErrNoSession means whatsmeow's store has no session for a login.
	ErrNoSession = errors.New("the WhatsApp session is gone (logged out)")
	// ErrSessionStore wraps failures of whatsmeow's session store.
	ErrSessionStore = errors.New("WhatsApp session store error")
	// ErrLoginInProgress means a login is already waiting for its QR code
	// or pairing code.
	ErrLoginInProgress = errors.New("a WhatsApp login is already in progress")
	// ErrAlreadyLoggedIn means the account already has a WhatsApp login.
	ErrAlreadyLoggedIn = errors.New("already logged in to WhatsApp; `logout whatsapp` first")
	// ErrMediaRef means a media reference is not one this connector made.
	ErrMediaRef = errors.New("not a WhatsApp media reference")
	// ErrStoredJID means a stored JID cannot be decrypted (identity.secret
	// changed?) or parsed.
	ErrStoredJID = errors.New("stored WhatsApp ID is unreadable")
	// ErrContactNotAdded means WhatsApp did not let the relay account add
	// a contact to a group of its own for a conversation (their privacy
	// settings, usually); the group was left again.
	ErrContactNotAdded = errors.New("that contact's one-to-one WhatsApp chat with the bridge's relay account is in another user's conversation, " +
		"and WhatsApp did not let the relay add them to a group for yours (usually their privacy settings: they can save the relay's number " +
		"as a contact, or let everyone add them to groups); or log in your own WhatsApp with `login whatsapp`")
	// ErrGroupNeedsRelay means a group of its own for a conversation was
	// asked for a chat that goes through the user's own WhatsApp login,
	// whose one-to-one chats are theirs alone.
	ErrGroupNeedsRelay = errors.New("only chats through the relay account get a WhatsApp group of their own; your own WhatsApp login's chat with that number is already in another conversation")
	// ErrNoRecipient is what Hooks.OnUnrouted returns (wrapped) when a
	// chat can have no conversation: nobody on the bridge has a chat with
	// that contact (the relay account's strangers). The message is not
	// kept, and the contact is told so in a one-to-one chat.
	ErrNoRecipient = errors.New("nobody on the bridge has a conversation with this WhatsApp contact")
	// ErrContactLeftGroup means the contact left the WhatsApp group the
	// relay made for this conversation, so a message there would reach
	// nobody; it is refused until they rejoin.
	ErrContactLeftGroup = errors.New("the contact left this chat's WhatsApp group, so messages sent here would reach nobody; they arrive again once the contact rejoins the group")
	// ErrNoTimerPermission means the account may not change a group's
	// disappearing timer.
	ErrNoTimerPermission = errors.New("the WhatsApp account may not change this chat's disappearing timer")
	// ErrRelayGroupInfo means a group change from Matrix (name,
	// description, picture, a member removed) reached a chat of the
	// relay account, which changes no group for anyone.
	ErrRelayGroupInfo = errors.New("the bridge's relay account does not change WhatsApp groups for anyone; log in your own WhatsApp with `login whatsapp` to do that")
	// ErrNotYourGroup means a Matrix user tried to change a WhatsApp
	// group that another user's login is in.
	ErrNotYourGroup = errors.New("only the Matrix user whose WhatsApp login is in this group can change it")
	// ErrGroupChangeRefused means WhatsApp refused a group change (the
	// account is not an admin of the group, say).
	ErrGroupChangeRefused = errors.New("WhatsApp refused the change (only group admins may make it, or the group does not allow it)")
	// ErrNoGroupPicture means WhatsApp has no picture for a group.
	ErrNoGroupPicture = errors.New("the WhatsApp group has no picture")
	// ErrBadGroupPicture means a picture could not be made into the JPEG
	// WhatsApp requires.
	ErrBadGroupPicture = errors.New("the picture is not an image WhatsApp takes (JPEG or PNG)")
	// ErrPollUnknown means a vote names a poll whose options the bridge
	// does not know on WhatsApp (never bridged there, or its metadata
	// expired), so it cannot be cast.
	ErrPollUnknown = errors.New("the poll is not known to the bridge on WhatsApp (its options expired or it was never bridged), so the vote cannot be cast")
	// ErrPollUnreadable means a stored poll's option list did not decrypt.
	ErrPollUnreadable = errors.New("stored WhatsApp poll options are unreadable")
)
