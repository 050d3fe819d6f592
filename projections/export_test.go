package projections

import "context"

// BeginGroup begins a batch transaction of set group as the builder's batches do: on
// PostgreSQL on the group's own connection, where rows are copied in.
func (b *Builder) BeginGroup(ctx context.Context, group int) (*Tx, error) {
	return b.beginOn(ctx, group)
}
