package matrix

import "context"

// BackfillBridgeInfo runs the start-time bridge-info backfill now.
func (c *Connector) BackfillBridgeInfo(ctx context.Context) { c.backfillBridgeInfo(ctx) }
