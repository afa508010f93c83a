package mailbox

import (
	"reflect"
	"unsafe"

	"github.com/emersion/go-imap/v2/imapserver"
)

// updateWriterOK reports whether imapserver.UpdateWriter still starts
// with its conn field, which updateWriter sets.
var updateWriterOK = func() bool {
	t := reflect.TypeOf(imapserver.UpdateWriter{})
	return t.NumField() > 0 && t.Field(0).Name == "conn" && t.Field(0).Offset == 0 &&
		t.Field(0).Type == reflect.TypeOf((*imapserver.Conn)(nil))
}()

// updateWriter returns an UpdateWriter for c outside Poll and Idle.
//
// imapserver hands one to Poll and Idle only, but STORE must announce a
// new keyword in FLAGS before the FETCH responses that show it (RFC 3501
// §7.2.6), and Store gets a FetchWriter. UpdateWriter is a conn and a
// flag; an UpdateWriter with expunges not allowed writes through c's
// encoder, which takes c's lock, as Poll's would. If a new imapserver
// changes the struct, the returned writer is nil and the caller falls
// back to announcing after the command (TestUpdateWriterLayout fails).
func updateWriter(c *imapserver.Conn) *imapserver.UpdateWriter {
	if !updateWriterOK {
		return nil
	}
	w := new(imapserver.UpdateWriter)
	*(**imapserver.Conn)(unsafe.Pointer(w)) = c
	return w
}
