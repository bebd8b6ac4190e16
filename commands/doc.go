// Package commands owns the bot's commands: one Registry holding every
// command as a value (name, usage, help, permission level, argument check,
// function), each registered by the package that owns what it does —
// identity (link, verify, unlink, links, prefer, sms, reveal), safety
// (block, unblock, report, admin), the WhatsApp connector (login, logout),
// conversation retention (retention) and routing (start); help and whoami
// are generic and live here. Front ends (the Matrix bot today, a
// provisioning API later) parse what a user typed into a Request and call
// Registry.Run; the answer is text, and a command that goes on after its
// answer (a login) sends Steps through Request.Reply, which the front end
// renders (the Matrix bot draws a QR step as an image).
//
// Adding a command is one Registry.Register call in its owner's package
// (wired by the daemon); help is generated from the registry.
package commands
