package config

import "github.com/mailhook/mailhook/route"

// UserRulePrefix starts the name of a mailbox user's implicit rule:
// "user-" and the user's name.
const UserRulePrefix = "user-"

// Known returns the names the routing rules may refer to: the webhooks and
// the mailbox users.
func (c *Config) Known() route.Known {
	k := route.Known{Webhooks: map[string]bool{}, Users: map[string]bool{}}
	for name := range c.Webhooks {
		k.Webhooks[name] = true
	}
	for _, u := range c.Mailbox.Users {
		k.Users[u.Name] = true
	}
	return k
}

// Rules returns the routing rules the config gives: the configured routes,
// then, for each mailbox user with addresses (mailbox.users[].addresses),
// an implicit rule named UserRulePrefix+name that delivers mail for those
// addresses to the user's INBOX (plus-addresses too, as the rcpt glob
// matches them). The configured routes come first, so they take
// precedence over a user's rule for the same address.
func (c *Config) Rules() []route.RuleConfig {
	rules := append([]route.RuleConfig(nil), c.Routes...)
	for _, u := range c.Mailbox.Users {
		if len(u.Addresses) == 0 {
			continue
		}
		rules = append(rules, route.RuleConfig{
			Name:    UserRulePrefix + u.Name,
			Match:   route.MatchConfig{Rcpt: route.StringList(u.Addresses)},
			Actions: []route.ActionConfig{{Mailbox: u.Name}},
		})
	}
	return rules
}
