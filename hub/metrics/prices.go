package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
)

// Price is what one model costs, in US dollars per million tokens.
type Price struct {
	Model      string  `json:"model"`
	Prompt     float64 `json:"prompt_per_million"`
	Completion float64 `json:"completion_per_million"`
}

// PriceTable is the LLM price table the hub serves at
// GET /api/metrics/prices; the runtime's LLM usage node turns tokens into
// an estimated cost with it. A model matches the entry with the same name
// or, failing that, the longest entry that is a prefix of it followed by
// '-', ':' or '@' (gpt-4o-2024-08-06 is priced as gpt-4o).
type PriceTable struct {
	Currency string  `json:"currency"`
	Prices   []Price `json:"prices"`
}

// DefaultPrices is the built-in table: published list prices at the time
// of writing, for an estimate only; --llm-prices replaces it. Local models
// (Ollama) cost nothing.
func DefaultPrices() PriceTable {
	return PriceTable{Currency: "USD", Prices: []Price{
		{"gpt-4o", 2.5, 10},
		{"gpt-4o-mini", 0.15, 0.6},
		{"gpt-4.1", 2, 8},
		{"gpt-4.1-mini", 0.4, 1.6},
		{"o3-mini", 1.1, 4.4},
		{"claude-3-5-sonnet", 3, 15},
		{"claude-3-5-haiku", 0.8, 4},
		{"claude-3-opus", 15, 75},
		{"llama3", 0, 0},
		{"mistral", 0, 0},
	}}
}

// MaxPrices bounds the entries of a price table.
const MaxPrices = 1000

// Validate checks t: currency USD, 1..MaxPrices entries with distinct
// non-empty model names of at most MaxLabelValueBytes, prices finite and
// not negative. The error names the field (prices[2].prompt_per_million).
func (t PriceTable) Validate() error {
	if t.Currency != "USD" {
		return fmt.Errorf("currency: must be USD")
	}
	if len(t.Prices) == 0 || len(t.Prices) > MaxPrices {
		return fmt.Errorf("prices: give 1 to %d entries", MaxPrices)
	}
	seen := map[string]bool{}
	for i, p := range t.Prices {
		switch {
		case p.Model == "" || len(p.Model) > MaxLabelValueBytes || Sanitize(p.Model) != p.Model:
			return fmt.Errorf("prices[%d].model: must be 1-%d printable bytes", i, MaxLabelValueBytes)
		case seen[p.Model]:
			return fmt.Errorf("prices[%d].model: %q is listed twice", i, p.Model)
		case !okPrice(p.Prompt):
			return fmt.Errorf("prices[%d].prompt_per_million: must be a number >= 0", i)
		case !okPrice(p.Completion):
			return fmt.Errorf("prices[%d].completion_per_million: must be a number >= 0", i)
		}
		seen[p.Model] = true
	}
	return nil
}

func okPrice(v float64) bool { return v >= 0 && !math.IsInf(v, 0) && !math.IsNaN(v) }

// LoadPrices reads a price table from a JSON file and validates it.
func LoadPrices(path string) (PriceTable, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return PriceTable{}, fmt.Errorf("llm prices: %w", err)
	}
	var t PriceTable
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return PriceTable{}, fmt.Errorf("llm prices %s: %w", path, err)
	}
	if err := t.Validate(); err != nil {
		return PriceTable{}, fmt.Errorf("llm prices %s: %w", path, err)
	}
	return t, nil
}

// Lookup returns the price of model (see PriceTable for the matching).
func (t PriceTable) Lookup(model string) (Price, bool) {
	best := -1
	for i, p := range t.Prices {
		if p.Model == model {
			return p, true
		}
		if strings.HasPrefix(model, p.Model) && len(model) > len(p.Model) && strings.ContainsRune("-:@", rune(model[len(p.Model)])) {
			if best < 0 || len(p.Model) > len(t.Prices[best].Model) {
				best = i
			}
		}
	}
	if best < 0 {
		return Price{}, false
	}
	return t.Prices[best], true
}

// Cost is the estimated cost of tokens of model; 0 when it has no price.
func (t PriceTable) Cost(model string, prompt, completion float64) float64 {
	p, ok := t.Lookup(model)
	if !ok {
		return 0
	}
	return (prompt*p.Prompt + completion*p.Completion) / 1e6
}

// Sorted returns t with its entries sorted by model.
func (t PriceTable) Sorted() PriceTable {
	c := PriceTable{Currency: t.Currency, Prices: append([]Price(nil), t.Prices...)}
	sort.Slice(c.Prices, func(i, j int) bool { return c.Prices[i].Model < c.Prices[j].Model })
	return c
}
