package contact

import (
	"slices"
	"strings"

	"github.com/eventcrm/crm/domain"
)

// Channel is where a lead came from.
type Channel string

// Lead channels (DOMAIN.md: web form, seminar/event, exhibition card, DM/SNS ad, referral).
const (
	ChannelWebForm    Channel = "web_form"
	ChannelSeminar    Channel = "seminar"
	ChannelExhibition Channel = "exhibition"
	ChannelDirectMail Channel = "direct_mail"
	ChannelSocialAd   Channel = "social_ad"
	ChannelReferral   Channel = "referral"
	ChannelOther      Channel = "other"
)

var channels = []Channel{ChannelWebForm, ChannelSeminar, ChannelExhibition, ChannelDirectMail,
	ChannelSocialAd, ChannelReferral, ChannelOther}

// Channels lists the lead channels.
func Channels() []Channel { return slices.Clone(channels) }

// ParseChannel validates a lead channel.
func ParseChannel(field, s string) (Channel, error) {
	return parseEnum(field, s, channels, "lead channel")
}

// TouchpointKind is the kind of an activity with a contact.
type TouchpointKind string

// Touchpoint kinds (DOMAIN.md).
const (
	KindCall             TouchpointKind = "call"
	KindEmail            TouchpointKind = "email"
	KindMeeting          TouchpointKind = "meeting"
	KindVisit            TouchpointKind = "visit"
	KindWebinar          TouchpointKind = "webinar"
	KindSeminar          TouchpointKind = "seminar"
	KindInquiry          TouchpointKind = "inquiry"
	KindSupportTicket    TouchpointKind = "support_ticket"
	KindEmailOpen        TouchpointKind = "email_open"
	KindEmailClick       TouchpointKind = "email_click"
	KindDocumentDownload TouchpointKind = "document_download"
	// Outbound messages by the channels a contact can opt out of (see ConsentChannelOf).
	KindSMS           TouchpointKind = "sms"
	KindPostalMail    TouchpointKind = "postal_mail"
	KindSocialMessage TouchpointKind = "social_message"
)

var touchpointKinds = []TouchpointKind{KindCall, KindEmail, KindMeeting, KindVisit, KindWebinar,
	KindSeminar, KindInquiry, KindSupportTicket, KindEmailOpen, KindEmailClick, KindDocumentDownload,
	KindSMS, KindPostalMail, KindSocialMessage}

// TouchpointKinds lists every touchpoint kind.
func TouchpointKinds() []TouchpointKind { return slices.Clone(touchpointKinds) }

// ParseTouchpointKind validates a touchpoint kind.
func ParseTouchpointKind(field, s string) (TouchpointKind, error) {
	return parseEnum(field, s, touchpointKinds, "touchpoint kind")
}

// ConsentChannel is a channel a contact can opt out of.
type ConsentChannel string

// Consent channels.
const (
	ConsentEmail  ConsentChannel = "email"
	ConsentPhone  ConsentChannel = "phone"
	ConsentSMS    ConsentChannel = "sms"
	ConsentPostal ConsentChannel = "postal"
	ConsentSocial ConsentChannel = "social"
)

var consentChannels = []ConsentChannel{ConsentEmail, ConsentPhone, ConsentSMS, ConsentPostal, ConsentSocial}

// ParseConsentChannel validates a consent channel.
func ParseConsentChannel(field, s string) (ConsentChannel, error) {
	return parseEnum(field, s, consentChannels, "consent channel")
}

func parseEnum[T ~string](field, s string, allowed []T, what string) (T, error) {
	if slices.Contains(allowed, T(s)) {
		return T(s), nil
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	return "", domain.Invalid(field, "%q is not a %s (%s)", s, what, strings.Join(names, ", "))
}
