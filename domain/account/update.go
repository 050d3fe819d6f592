package account

import "github.com/eventcrm/crm/domain"

// Update changes account details; nil fields stay as they are, "" clears one (not the name),
// and an Address replaces the whole address (an empty one clears it).
type Update struct {
	Name, Domain, Industry, Size *string
	Address                      *Address
}

// Update decides a change of details. Fields equal to the current value are not recorded; a
// command that changes nothing is refused, so every event records a real change.
func (a *Account) Update(cmd Update) ([]domain.Event, error) {
	if !a.Exists() {
		return nil, domain.NotFound("account not found")
	}
	changed := &DetailsChanged{AccountID: a.ID}
	steps := []func() (bool, error){
		func() (bool, error) { return changeString(&changed.Name, cmd.Name, a.Name, parseName) },
		func() (bool, error) {
			return changeString(&changed.Domain, cmd.Domain, a.Domain, func(s string) (string, error) { return ParseDomain("domain", s) })
		},
		func() (bool, error) { return changeString(&changed.Industry, cmd.Industry, a.Industry, parseIndustry) },
		func() (bool, error) { return a.changeSize(changed, cmd.Size) },
		func() (bool, error) { return a.changeAddress(changed, cmd.Address) },
	}
	changedSome := false
	for _, step := range steps {
		ok, err := step()
		if err != nil {
			return nil, err
		}
		changedSome = changedSome || ok
	}
	if !changedSome {
		return nil, domain.Refused("the update changes nothing")
	}
	return []domain.Event{changed}, nil
}

// changeString sets *dst to the parsed proposal when it differs from current.
func changeString(dst **string, proposed *string, current string, parse func(string) (string, error)) (bool, error) {
	if proposed == nil {
		return false, nil
	}
	v, err := parse(*proposed)
	if err != nil || v == current {
		return false, err
	}
	*dst = &v
	return true, nil
}

func (a *Account) changeSize(changed *DetailsChanged, proposed *string) (bool, error) {
	if proposed == nil {
		return false, nil
	}
	size, err := ParseSizeBand("size", *proposed)
	if err != nil || size == a.Size {
		return false, err
	}
	changed.Size = &size
	return true, nil
}

func (a *Account) changeAddress(changed *DetailsChanged, proposed *Address) (bool, error) {
	if proposed == nil {
		return false, nil
	}
	n, err := proposed.normalized("address")
	if err != nil {
		return false, err
	}
	current := Address{}
	if a.Address != nil {
		current = *a.Address
	}
	if n == current {
		return false, nil
	}
	changed.Address = &n
	return true, nil
}
