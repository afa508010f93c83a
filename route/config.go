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
	known := Known{Webhooks: map[string]bool{}, Users: map[string]bool{}}
	for name := range c.Webhooks {
		known.Webhooks[name] = true
	}
	for _, u := range c.Mailbox.Users {
		known.Users[u.Name] = true
	}
	_, err := Compile(c.Routes, known)
	var errs config.ValidationErrors
	if err != nil && !errors.As(err, &errs) {
		errs = config.ValidationErrors{{Key: "routes", Reason: err.Error()}}
	}
	return errs
}
