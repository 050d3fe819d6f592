package commands

// CreatedID is the id of the contact, deal or account that a create command with
// idempotency key gets (or got) in scope (its Meta.KeyScope, or its actor): ids derive from
// the key, so a caller that created records under keys of its own can name them later
// without having kept their ids (an import's deals and touchpoints find the contacts of an
// earlier import by their keys).
func CreatedID(scope, idempotencyKey string) string {
	return newIDs(Meta{KeyScope: scope, IdempotencyKey: idempotencyKey}).aggregate()
}
