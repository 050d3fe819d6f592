package commands

// CreatedID is the id of the contact, deal or account that a create command sent by actor
// with idempotency key gets (or got): ids derive from the key, so a caller that created
// records under keys of its own can name them later without having kept their ids (an
// import's deals and touchpoints find the contacts of an earlier import by their keys).
func CreatedID(actor, idempotencyKey string) string {
	return newIDs(Meta{Actor: actor, IdempotencyKey: idempotencyKey}).aggregate()
}
