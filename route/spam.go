package route

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/inbound"
)

// spamMatcher is a rule's compiled spam and spam_score matchers.
type spamMatcher struct {
	actions, results []string
	score            *scoreCmp
}

// scoreCmp is a spam_score comparison like ">= 6".
type scoreCmp struct {
	op  string
	v   float64
	src string
}

var scoreOps = []string{">=", "<=", "==", "!=", ">", "<", "="}

// compileSpam compiles the spam and spam_score matchers of m; nil when the
// rule has neither.
func compileSpam(add addFunc, key string, m config.RuleMatch) *spamMatcher {
	if m.Spam == nil && strings.TrimSpace(m.SpamScore) == "" {
		return nil
	}
	sm := &spamMatcher{}
	if m.Spam != nil {
		for i, a := range m.Spam.Action {
			a = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(a)), "_", " ")
			if !slices.Contains(inbound.SpamActions, a) {
				add(fmt.Sprintf("%sspam.action[%d]", key, i), "%q is not an rspamd action; want one of %s",
					m.Spam.Action[i], strings.Join(inbound.SpamActions, ", "))
				continue
			}
			sm.actions = append(sm.actions, a)
		}
		for i, r := range m.Spam.Result {
			r = strings.ToLower(strings.TrimSpace(r))
			if r != inbound.SpamResultOK && r != inbound.SpamResultError {
				add(fmt.Sprintf("%sspam.result[%d]", key, i), "%q is not a spam result; want ok or error", m.Spam.Result[i])
				continue
			}
			sm.results = append(sm.results, r)
		}
		if len(m.Spam.Action) == 0 && len(m.Spam.Result) == 0 {
			add(key+"spam", "set action or result (like {action: [reject, \"add header\"]})")
		}
	}
	if s := strings.TrimSpace(m.SpamScore); s != "" {
		c, err := parseScoreCmp(s)
		if err != nil {
			add(key+"spam_score", "%v", err)
		} else {
			sm.score = c
		}
	}
	return sm
}

// parseScoreCmp reads "OP NUMBER" (a bare number means ">=").
func parseScoreCmp(s string) (*scoreCmp, error) {
	c := &scoreCmp{op: ">=", src: s}
	rest := s
	for _, op := range scoreOps {
		if strings.HasPrefix(s, op) {
			c.op, rest = op, s[len(op):]
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
	if err != nil {
		return nil, fmt.Errorf("%q is not a comparison like \">= 6\" (operators %s)", s, strings.Join(scoreOps, " "))
	}
	c.v = v
	return c, nil
}

func (c *scoreCmp) match(score float64) bool {
	switch c.op {
	case ">=":
		return score >= c.v
	case "<=":
		return score <= c.v
	case ">":
		return score > c.v
	case "<":
		return score < c.v
	case "!=":
		return score != c.v
	}
	return score == c.v
}

// match reports whether the verdict s matches. No verdict (rspamd not
// configured) matches nothing; a failed check matches only result: error.
func (sm *spamMatcher) match(s *inbound.Spam) bool {
	if s == nil {
		return false
	}
	if len(sm.results) > 0 && !slices.Contains(sm.results, s.Result) {
		return false
	}
	if (len(sm.actions) > 0 || sm.score != nil) && !s.OK() {
		return false
	}
	if len(sm.actions) > 0 && !slices.Contains(sm.actions, s.Action) {
		return false
	}
	return sm.score == nil || sm.score.match(s.Score)
}

// explain says why a verdict matched, for Decision.Why.
func (sm *spamMatcher) explain(s *inbound.Spam) []string {
	var parts []string
	if len(sm.results) > 0 {
		parts = append(parts, fmt.Sprintf("spam result %s", s.Result))
	}
	if len(sm.actions) > 0 {
		parts = append(parts, fmt.Sprintf("spam action %q", s.Action))
	}
	if sm.score != nil {
		parts = append(parts, fmt.Sprintf("spam score %g matched %s", s.Score, sm.score.src))
	}
	return parts
}
