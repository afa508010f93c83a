package deliver

import "time"

// SetMailCacheClock makes c read the time from now.
func SetMailCacheClock(c *MailCache, now func() time.Time) { c.now = now }
