package admin

import "github.com/mailhook/mailhook/deliver"

// Queue is what the admin server needs of the delivery queue: the
// operator's verbs (deliver.Operator), and reading the messages it shows
// and serves the raw source of (deliver.Messages). A queue backend
// (deliver.Backend) is one.
type Queue interface {
	deliver.Operator
	deliver.Messages
}
