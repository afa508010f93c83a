package config

import (
	"reflect"

	"github.com/go-viper/mapstructure/v2"
)

// Rule is one rule as written in the config file under "routes". Package
// route compiles and checks the rules (route.Compile, route.CheckConfig);
// this package only decodes them.
type Rule struct {
	Name     string       `mapstructure:"name"`
	Match    RuleMatch    `mapstructure:"match"`
	Actions  []RuleAction `mapstructure:"actions"`
	Continue bool         `mapstructure:"continue"`
}

// RuleMatch holds a rule's matchers; all given matchers must match (AND).
// An empty RuleMatch matches everything.
type RuleMatch struct {
	Rcpt     StringList        `mapstructure:"rcpt"`      // address globs, any may match
	MailFrom StringList        `mapstructure:"mail_from"` // address globs
	From     StringList        `mapstructure:"from"`      // address globs on the From header
	Header   map[string]string `mapstructure:"header"`    // header name -> regex
	Subject  string            `mapstructure:"subject"`   // regex
	Auth     map[string]string `mapstructure:"auth"`      // spf|dkim|dmarc|dmarc_policy -> result
	// AutoSubmitted, when set, matches the parsed message's auto_submitted.
	AutoSubmitted *bool `mapstructure:"auto_submitted"`
	// Quarantine, when set, matches the quarantine flag (auth.quarantine).
	Quarantine *bool `mapstructure:"quarantine"`
	// Reply matches the recipient's signed reply address state: valid,
	// invalid, expired or none, comma-separated for alternatives.
	Reply string `mapstructure:"reply"`
	// Spam matches rspamd's verdict and SpamScore its score, like ">= 6".
	Spam      *SpamMatch `mapstructure:"spam"`
	SpamScore string     `mapstructure:"spam_score"`
}

// SpamMatch matches rspamd's verdict, the webhook's "spam" object:
// `spam: {action: [reject, "add header"]}`, `spam: {result: error}` (rspamd
// could not be asked and the message was accepted anyway).
type SpamMatch struct {
	// Action lists rspamd actions, any of which may match: no action,
	// greylist, add header, rewrite subject, soft reject, reject
	// ("add_header" is read as "add header").
	Action StringList `mapstructure:"action"`
	// Result lists results, any of which may match: ok, error.
	Result StringList `mapstructure:"result"`
}

// RuleAction is one action; exactly one of its fields is set.
type RuleAction struct {
	Webhook string   `mapstructure:"webhook"`
	Mailbox string   `mapstructure:"mailbox"`
	Folder  string   `mapstructure:"folder"` // with mailbox
	Forward []string `mapstructure:"forward"`
	Reject  string   `mapstructure:"reject"` // "550 5.1.1 text"
	Drop    bool     `mapstructure:"drop"`
	// ForwardAutoSubmitted, with forward, lets the forward relay
	// auto-submitted mail (route.Action.ForwardAutoSubmitted).
	ForwardAutoSubmitted bool `mapstructure:"forward_auto_submitted"`
}

// StringList accepts a single string or a list of strings in config.
type StringList []string

var stringListType = reflect.TypeOf(StringList{})

// stringListHook is a mapstructure decode hook that lets a StringList be
// written as a single string or as a list of strings.
func stringListHook() mapstructure.DecodeHookFunc {
	return func(from, to reflect.Type, data any) (any, error) {
		if to != stringListType || from.Kind() != reflect.String {
			return data, nil
		}
		return StringList{reflect.ValueOf(data).String()}, nil
	}
}

// UserRulePrefix starts the name of a mailbox user's implicit rule:
// "user-" and the user's name.
const UserRulePrefix = "user-"

// Rules returns the routing rules the config gives: the configured routes,
// then, for each mailbox user with addresses (mailbox.users[].addresses),
// an implicit rule named UserRulePrefix+name that delivers mail for those
// addresses to the user's INBOX (plus-addresses too, as the rcpt glob
// matches them). The configured routes come first, so they take
// precedence over a user's rule for the same address.
func (c *Config) Rules() []Rule {
	rules := append([]Rule(nil), c.Routes...)
	for _, u := range c.Mailbox.Users {
		if len(u.Addresses) == 0 {
			continue
		}
		rules = append(rules, Rule{
			Name:    UserRulePrefix + u.Name,
			Match:   RuleMatch{Rcpt: StringList(u.Addresses)},
			Actions: []RuleAction{{Mailbox: u.Name}},
		})
	}
	return rules
}
