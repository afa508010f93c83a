package redisq

import (
	"strings"
	"testing"
)

// TestSlot checks slot against the slots a real Redis Cluster reported
// (CLUSTER KEYSLOT) for these keys.
func TestSlot(t *testing.T) {
	for key, want := range map[string]int{"mailhook:0": 12606, "mailhook:1": 8479, "mailhook:2": 4476, "mailhook:3": 349, "mailhook:10": 1116, "123456789": 12739} {
		if got := slot(key); got != want {
			t.Errorf("slot(%q) = %d, want %d", key, got, want)
		}
	}
}

// TestShardTagsSpread: shard k's slot lies in the k-th of n equal slot
// ranges, for any prefix, so the shards spread evenly over masters that
// hold equal contiguous ranges.
func TestShardTagsSpread(t *testing.T) {
	for _, prefix := range []string{"mailhook", "mhb-643a7cb3", "x"} {
		for _, n := range []int{2, 3, 6, 9, 64} {
			tags := shardTags(prefix, n)
			for k, tag := range tags {
				s := slot(strings.Trim(tag, "{}"))
				if s < k*slots/n || s >= (k+1)*slots/n {
					t.Errorf("shardTags(%q, %d)[%d] = %s in slot %d, outside range %d", prefix, n, k, tag, s, k)
				}
			}
		}
	}
	if got := shardTags("mailhook", 1); len(got) != 1 || got[0] != "{mailhook}" {
		t.Errorf("shardTags(mailhook, 1) = %v, want the one tag {mailhook}", got)
	}
}
