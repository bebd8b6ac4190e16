package whatsapp

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types/events"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/commands"
)

// pairingClientName is how a pairing-code login presents itself on the
// phone; WhatsApp wants "Browser (OS)".
const pairingClientName = "Chrome (Linux)"

// firstCodeTimeout bounds the wait for WhatsApp's first QR event, after
// which a pairing code may be requested.
const firstCodeTimeout = 30 * time.Second

// pendingLogin is a login waiting for its QR code to be scanned or its
// pairing code to be entered.
type pendingLogin struct {
	l *login
	// reply shows the login's later steps where it was asked for.
	reply  func(context.Context, commands.Step)
	cancel context.CancelFunc
	// why, when set before cancel, is what the user is told instead of
	// "timed out".
	why atomic.Pointer[string]
}

// abort ends a pending login early with a reason for the user.
func (p *pendingLogin) abort(why string) {
	p.why.Store(&why)
	p.cancel()
}

// NotConfiguredAnswer is the answer to `login whatsapp` and `logout
// whatsapp` on a bridge where whatsapp.enabled is false.
const NotConfiguredAnswer = "WhatsApp is not configured on this bridge (whatsapp.enabled is false in its config). Ask the bridge admin to enable it."

// NotConfiguredCommand answers WhatsApp commands on a bridge without
// WhatsApp.
func NotConfiguredCommand(context.Context, *commands.Request) string { return NotConfiguredAnswer }

// LoginCommand answers `login whatsapp` (QR codes sent as steps to the
// room the command came from, each replacing the last), `login whatsapp
// +N` (a pairing code, answered as text) and `login whatsapp relay`
// (admins: QR login of the bridge-owned relay account).
func (c *Connector) LoginCommand(ctx context.Context, req *commands.Request) string {
	account := req.User.ID
	phone := ""
	if len(req.Args) == 2 && strings.EqualFold(req.Args[1], "relay") {
		if !req.IsAdmin() {
			return "login whatsapp relay is only available to bridge admins."
		}
		account = RelayAccount
	} else if len(req.Args) >= 2 {
		phone = req.Phone
		if phone == "" {
			number, err := commands.ReadPhone(strings.Join(req.Args[1:], " "), req.Region)
			if err != nil {
				return err.Error()
			}
			phone = number
		}
	}
	reply := req.Reply
	if reply == nil {
		reply = func(context.Context, commands.Step) {}
	}
	return c.Login(ctx, account, phone, reply).Text
}

// Login starts a WhatsApp login for account (a Matrix user ID or
// RelayAccount) and returns its first step: waiting for a QR code to be
// scanned (the codes follow through reply, each replacing the last), a
// pairing code to enter when phone (E.164) is given, or an error. Its end
// (done, error, timeout) follows through reply too.
func (c *Connector) Login(ctx context.Context, account, phone string, reply func(context.Context, commands.Step)) commands.Step {
	fail := func(text string) commands.Step { return commands.Step{Type: commands.StepError, Text: text} }
	who := "You are"
	if account == RelayAccount {
		who = "The relay account is"
	}
	c.mu.Lock()
	running := c.running
	if l := c.logins[account]; l != nil && l.state != StateLoggedOut {
		c.mu.Unlock()
		return fail(who + " already logged in to WhatsApp. Send `logout whatsapp` first to log in again.")
	}
	if _, busy := c.pending[account]; busy {
		c.mu.Unlock()
		return fail("A WhatsApp login is already waiting to be completed; finish it or wait for it to time out.")
	}
	c.mu.Unlock()
	if !running {
		return fail("WhatsApp is starting; try again in a moment.")
	}
	log := c.log.With().Str("account", c.accountRef(account)).Logger()
	cli, err := c.sessions.New(ctx)
	if err != nil {
		log.Error().Err(err).Msg("Could not create a WhatsApp device")
		return fail("Could not start a WhatsApp login right now; please try again.")
	}
	l := &login{account: account, client: cli, state: StateConnecting}
	c.attach(l)
	timeout := c.cfg.LoginTimeout.Std()
	lctx, cancel := context.WithTimeout(c.baseCtx(), timeout)
	p := &pendingLogin{l: l, reply: reply, cancel: cancel}
	c.mu.Lock()
	if _, busy := c.pending[account]; busy {
		c.mu.Unlock()
		cancel()
		return fail("A WhatsApp login is already waiting to be completed; finish it or wait for it to time out.")
	}
	c.pending[account] = p
	c.mu.Unlock()
	failStart := func(text string, err error) commands.Step {
		log.Warn().Err(scrubErr(err)).Msg("WhatsApp login failed to start")
		cancel()
		cli.Disconnect()
		c.endPending(account, p)
		return fail(text)
	}
	qr, err := cli.GetQRChannel(lctx)
	if err != nil {
		return failStart("Could not start a WhatsApp login right now; please try again.", err)
	}
	if err = cli.Connect(); err != nil {
		return failStart("Could not connect to WhatsApp right now; please try again later.", err)
	}
	limit := timeout.Round(time.Second).String()
	if phone == "" {
		if !c.addBackground() {
			return failStart("The bridge is shutting down; send `login whatsapp` again once it is back.", context.Canceled)
		}
		go c.waitPairing(lctx, p, qr, true)
		return commands.Step{Type: commands.StepWaiting, Text: "Scan the QR code I am sending here with WhatsApp on your phone: Settings → Linked devices → Link a device. " +
			"A new code replaces the old one every 20 seconds or so; the login gives up after " + limit + "."}
	}
	// A pairing code can be asked for once WhatsApp sent its first QR
	// event (the connection is then ready for pairing).
	select {
	case item, ok := <-qr:
		if !ok || item.Event != whatsmeow.QRChannelEventCode {
			return failStart("WhatsApp did not accept the login; please try again.", errors.New("no QR event: "+item.Event))
		}
	case <-time.After(firstCodeTimeout):
		return failStart("WhatsApp did not answer in time; please try again.", errors.New("no QR event"))
	case <-lctx.Done():
		return failStart("WhatsApp did not answer in time; please try again.", lctx.Err())
	}
	code, err := cli.PairPhone(lctx, phone, true, whatsmeow.PairClientChrome, pairingClientName)
	if err != nil {
		if errors.Is(err, whatsmeow.ErrPhoneNumberTooShort) || errors.Is(err, whatsmeow.ErrPhoneNumberIsNotInternational) {
			return failStart("WhatsApp refused that number for a pairing code; check it, or use `login whatsapp` for a QR code.", err)
		}
		return failStart("WhatsApp could not give a pairing code right now; try again, or use `login whatsapp` for a QR code.", err)
	}
	if !c.addBackground() {
		return failStart("The bridge is shutting down; send `login whatsapp` again once it is back.", context.Canceled)
	}
	go c.waitPairing(lctx, p, qr, false)
	return commands.Step{Type: commands.StepCode, Payload: code, Text: "Your WhatsApp pairing code is " + code + ". On your phone: WhatsApp → Settings → Linked devices → Link a device → " +
		"Link with phone number instead, and enter the code. The login gives up after " + limit + "."}
}

// waitPairing follows a login's QR channel until it succeeds, fails or
// times out, replying each QR code as a step (showQR; the front end shows
// it in place of the last) and the login's end as the final step.
func (c *Connector) waitPairing(ctx context.Context, p *pendingLogin, qr <-chan whatsmeow.QRChannelItem, showQR bool) {
	defer c.bg.Done()
	defer p.cancel()
	defer c.endPending(p.l.account, p)
	log := c.log.With().Str("account", c.accountRef(p.l.account)).Logger()
	reply := func(step commands.Step) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		p.reply(rctx, step)
	}
	done := func(text string) { reply(commands.Step{Type: commands.StepDone, Text: text}) }
	giveUp := func(text string) {
		p.l.client.Disconnect()
		reply(commands.Step{Type: commands.StepError, Text: text})
	}
	for {
		select {
		case <-ctx.Done():
			if c.isLoggedIn(p.l) {
				done("")
				return
			}
			if why := p.why.Load(); why != nil {
				log.Info().Msg("WhatsApp login cancelled")
				giveUp(*why)
				return
			}
			log.Info().Msg("WhatsApp login timed out")
			giveUp("The WhatsApp login timed out before it was completed. Send `login whatsapp` to try again.")
			return
		case item, ok := <-qr:
			if !ok {
				if c.isLoggedIn(p.l) {
					done("")
					return
				}
				giveUp("The WhatsApp login timed out before it was completed. Send `login whatsapp` to try again.")
				return
			}
			switch item.Event {
			case whatsmeow.QRChannelEventCode:
				if showQR {
					reply(commands.Step{Type: commands.StepQR, Payload: item.Code,
						Text: "Scan with WhatsApp: Settings → Linked devices → Link a device"})
				}
			case whatsmeow.QRChannelSuccess.Event:
				log.Info().Msg("WhatsApp login paired")
				who := "You are"
				if p.l.account == RelayAccount {
					who = "The relay account is"
				}
				done(who + " now logged in to WhatsApp.")
				return
			case whatsmeow.QRChannelTimeout.Event:
				log.Info().Msg("WhatsApp login timed out")
				giveUp("The WhatsApp login timed out before it was completed. Send `login whatsapp` to try again.")
				return
			case whatsmeow.QRChannelClientOutdated.Event:
				log.Error().Msg("WhatsApp says the client is outdated; update switchboard")
				giveUp("WhatsApp refused the login because the bridge's WhatsApp client is outdated. The bridge admin must update switchboard.")
				return
			default:
				log.Warn().Err(scrubErr(item.Error)).Str("event", item.Event).Msg("WhatsApp login failed")
				giveUp("The WhatsApp login failed. Send `login whatsapp` to try again.")
				return
			}
		}
	}
}

func (c *Connector) isLoggedIn(l *login) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logins[l.account] == l
}

func (c *Connector) endPending(account string, p *pendingLogin) {
	c.mu.Lock()
	if c.pending[account] == p {
		delete(c.pending, account)
	}
	c.mu.Unlock()
}

// pairSuccess records a login once WhatsApp paired the device.
func (c *Connector) pairSuccess(ctx context.Context, l *login, evt *events.PairSuccess) {
	c.mu.Lock()
	old := c.logins[l.account]
	l.jid = evt.ID
	c.logins[l.account] = l
	c.mu.Unlock()
	if old != nil && old != l {
		if old.cancel != nil {
			old.cancel()
		}
		old.client.Disconnect()
	}
	_, err := c.db.Exec(ctx, upsertLoginQuery, l.account, c.keys.seal(evt.ID.String(), l.account), c.now().UnixMilli())
	if err != nil {
		c.log.Error().Err(err).Str("account", c.accountRef(l.account)).Msg("Failed to record WhatsApp login")
	}
}

// LogoutCommand answers `logout whatsapp` (and, for admins, `logout
// whatsapp relay`): the linked device is removed on WhatsApp (when it can
// be reached) and the session deleted.
func (c *Connector) LogoutCommand(ctx context.Context, req *commands.Request) string {
	account := req.User.ID
	if len(req.Args) == 2 && strings.EqualFold(req.Args[1], "relay") {
		if !req.IsAdmin() {
			return "Only bridge admins can log out the relay account."
		}
		account = RelayAccount
	}
	c.mu.Lock()
	l := c.logins[account]
	p := c.pending[account]
	c.mu.Unlock()
	if p != nil {
		p.abort("The WhatsApp login was cancelled (`logout whatsapp`).")
	}
	if l == nil {
		if p != nil {
			return "Cancelled the WhatsApp login in progress."
		}
		return "You are not logged in to WhatsApp."
	}
	answer := "Logged out of WhatsApp; the session was deleted from the bridge."
	if err := l.client.Logout(ctx); err != nil {
		c.log.Warn().Err(scrubErr(err)).Str("account", c.accountRef(account)).Msg("WhatsApp logout request failed; deleting the session anyway")
		answer += " WhatsApp could not be told, so also remove the bridge under Settings → Linked devices on your phone."
	}
	if l.cancel != nil {
		l.cancel()
	}
	l.client.Disconnect()
	if !l.jid.IsEmpty() {
		if err := c.sessions.Delete(ctx, l.jid); err != nil {
			c.log.Error().Err(err).Msg("Failed to delete WhatsApp session")
		}
	}
	c.forgetLogin(ctx, account)
	c.setState(ctx, l, StateLoggedOut, "logged out by the user")
	return answer
}

// Whoami returns the lines `whoami` adds: the user's WhatsApp login and
// whether the relay account can reach contacts for them. No number.
func (c *Connector) Whoami(_ context.Context, user id.UserID) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	line := "WhatsApp: not logged in (send `login whatsapp`)"
	if l := c.logins[string(user)]; l != nil {
		state := strings.ReplaceAll(l.state, "_", " ")
		if l.detail != "" && l.state != StateConnected {
			state += ": " + l.detail
		}
		line = "WhatsApp: logged in (" + state + ")"
	} else if _, ok := c.pending[string(user)]; ok {
		line = "WhatsApp: login in progress"
	}
	relay := "WhatsApp relay account: not available"
	if l := c.logins[RelayAccount]; l.usable() {
		relay = "WhatsApp relay account: available for contacts you reach without your own login"
	}
	return []string{line, relay}
}
