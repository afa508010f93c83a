// Package route decides, by ordered rules, what happens to a message: which
// webhooks, mailboxes and forwards it goes to, or whether it is refused.
package route
