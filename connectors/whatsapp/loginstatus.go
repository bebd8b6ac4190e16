package whatsapp

// LoginStatus is one account's WhatsApp login as data, for front ends that
// show it structured (the provisioning API's whoami) rather than as the
// text of Whoami.
type LoginStatus struct {
	// LoggedIn is true when the account has a login (in any State).
	LoggedIn bool
	// State is the login's state (a State constant; "" without a login);
	// Detail says more when it is not connected (never a number).
	State  string
	Detail string
	// Pending is true while a login started for the account waits to be
	// completed.
	Pending bool
}

// LoginStatus returns the login state of account (a Matrix user ID or
// RelayAccount).
func (c *Connector) LoginStatus(account string) LoginStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	var st LoginStatus
	if l := c.logins[account]; l != nil {
		st.LoggedIn, st.State = true, l.state
		if l.state != StateConnected {
			st.Detail = l.detail
		}
	}
	_, st.Pending = c.pending[account]
	return st
}

// RelayAvailable reports whether the bridge's relay account can carry
// chats for users without their own login.
func (c *Connector) RelayAvailable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logins[RelayAccount].usable()
}
