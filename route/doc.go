// Package route decides, by ordered rules, what happens to a message: which
// webhooks, mailboxes and forwards it goes to, or whether it is refused.
// The rules are written under "routes" in the config file (config.Rule);
// Compile checks and compiles them, and CheckConfig reports their problems
// with the rest of the file's. A Table decides on an inbound.Mail.
package route
