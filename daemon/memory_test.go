package daemon

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestQuietTrimmer(t *testing.T) {
	const mb = 1 << 20
	// Each step is the allocation total at the end of a window; trimmed
	// steps are followed by a trim that allocates nothing.
	tests := []struct {
		name string
		// start is the total when the trimmer starts.
		start  uint64
		totals []uint64
		want   []bool
	}{
		{"quiet after start-up garbage", 0, []uint64{10 * mb, 10*mb + 1000}, []bool{false, true}},
		{"busy windows wait for quiet", 0, []uint64{10 * mb, 20 * mb, 30 * mb, 30*mb + 1000}, []bool{false, false, false, true}},
		{"idle allocation does not trim again", 0, []uint64{10 * mb, 10*mb + 1000, 10*mb + 2000, 10*mb + 3000}, []bool{false, true, false, false}},
		{"a burst after a trim trims once more", 0, []uint64{10 * mb, 10 * mb, 20 * mb, 20 * mb, 20 * mb}, []bool{false, true, false, true, false}},
		{"a trickle trims once enough piles up", 4*mb - 1000, []uint64{4 * mb, 4*mb + 100<<10, 4*mb + 200<<10}, []bool{true, false, false}},
		{"the window limit is inclusive", 0, []uint64{8 * mb, 8*mb + trimQuietBytes, 8*mb + 2*trimQuietBytes + 1}, []bool{false, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := quietTrimmer{last: tt.start}
			var got []bool
			for _, total := range tt.totals {
				trim := q.observe(total)
				if trim {
					q.trimmed(total)
				}
				got = append(got, trim)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestHeapAllocatedGrows(t *testing.T) {
	before := heapAllocated()
	sink = make([]byte, 1<<20)
	assert.Greater(t, heapAllocated(), before)
}

var sink []byte
