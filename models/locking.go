package models

import "gorm.io/gorm/clause"

func clauseLocking(strength, options string) clause.Locking {
	return clause.Locking{Strength: strength, Options: options}
}
