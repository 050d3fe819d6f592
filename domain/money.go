package domain

import (
	"fmt"
	"strings"
)

// Money is an amount in minor units (cents, yen) of an ISO 4217 currency. Never a float.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

func (m Money) String() string { return fmt.Sprintf("%d %s", m.Amount, m.Currency) }

// NewMoney validates an amount and currency code; field names the command field for errors.
// Amounts may be zero (a free plan) but never negative.
func NewMoney(field string, amount int64, currency string) (Money, error) {
	if amount < 0 {
		return Money{}, Invalid(field, "amount %d is negative", amount)
	}
	if err := ValidateCurrency(field, currency); err != nil {
		return Money{}, err
	}
	return Money{Amount: amount, Currency: currency}, nil
}

// ValidateCurrency accepts active ISO 4217 codes, in upper case.
func ValidateCurrency(field, code string) error {
	if len(code) != 3 || !strings.Contains(iso4217, " "+code+" ") {
		return Invalid(field, "%q is not an ISO 4217 currency code (e.g. JPY, USD, EUR)", code)
	}
	return nil
}

// iso4217 lists the active ISO 4217 alphabetic codes, space separated and padded.
const iso4217 = " AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL" +
	" BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR" +
	" FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY" +
	" KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU" +
	" MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD" +
	" RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY" +
	" TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG "
