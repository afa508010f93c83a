package route

import (
	"errors"

	"github.com/mailhook/mailhook/config"
)

// CheckConfig compiles the routes of c against its webhooks and mailbox
// users and returns every problem, each naming its key (like
// "routes[1].match.header.Subject"). It is the config.Check of the
// routes: config.Load(path, route.CheckConfig, ...) reports them with the
// rest of the file.
func CheckConfig(c *config.Config) config.ValidationErrors {
	_, err := Compile(c.Routes, KnownOf(c))
	var errs config.ValidationErrors
	if err != nil && !errors.As(err, &errs) {
		errs = config.ValidationErrors{{Key: "routes", Reason: err.Error()}}
	}
	return errs
}

// KnownOf returns the names c's rules may refer to: its webhooks and its
// mailbox users.
func KnownOf(c *config.Config) Known {
	k := Known{Webhooks: map[string]bool{}, Users: map[string]bool{}}
	for name := range c.Webhooks {
		k.Webhooks[name] = true
	}
	for _, u := range c.Mailbox.Users {
		k.Users[u.Name] = true
	}
	return k
}
