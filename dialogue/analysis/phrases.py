"""The phrase tables of the intent rules (``intents``), compiled at import.

Each table is one rule family: a turn matches when any alternative occurs as
whole words in the ``plain`` normal form. The order in which ``intents.classify``
consults them is the precedence, documented there; the tables themselves only
say what each family sounds like in Indian English, Hinglish and noisy ASR text.
"""

from __future__ import annotations

import re
from typing import Final

from dialogue.model import Objection


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b")


def _vocabulary(words: str) -> frozenset[str]:
    return frozenset(words.split())


_CALL = r"(?:call|calls|phone|ring|fone|cal)"
# Someone other than the caller who may decide or must be asked.
_OTHERS = (
    r"(?:boss|bos|manager|partners?|co ?founders?|wife|husband|pati|patni|papa|pitaji|pita ji"
    r"|father|dad|daddy|mother|mummy|mom|maa|parents|family|director|directors|management"
    r"|board|seniors?|ghar ?w?aa?l(?:e|o|on|ey|a)|gharwal\w*|bhai sahab|bade bhai\w*|bhaiya"
    r"|bhaiyya|malik|maalik|owners?|ceo|md|team(?: lead)?|accounts|finance|purchase department"
    r"|procurement|hr|committee|owner sahab|son|beta|daughter|beti|brother|bhai|uncle|chacha"
    r"|in laws|sasur|saas|head|purchase head|principal|society|trustees?|head office"
    r"|regional office|chairman|secretary|cofounder|cfo|cto|coo|gm|general manager|vp"
    r"|superiors?|higher ups|higher management|upar wal[eo]|seth|sethji|ammi|abbu|hubby"
    r"|better half|mrs|mr)"
)
# What someone else does when they decide ("my wife decides", "papa lete hain",
# "the committee will take a call", "my son handles all this").
_DECIDES_3P = (
    r"(?:decides?|decide (?:kar\w*|hoga|hogi)|will decide|(?:will |would |has to )?"
    r"(?:take|takes) (?:the |all |such |these |those |final |a )*(?:decisions?|calls?)"
    r"|approves?|signs? off|has the final say|(?:lete|leti|leta|karte|karti) (?:hai|hain|h)"
    r"|karenge|karega|karegi|handles?|takes care of|looks? after|manages|dekhte|dekhti"
    r"|sambhalte|sambhalti)"
)
_DECISION = r"(?:decision|desicion|decission|descision|desision|faisla|faisle)"
# One of _OTHERS as a whole word, possessive or plural ("fathers", "papaji").
_WHO = _OTHERS + r"(?:s|ji)?\b"

DO_NOT_CALL: Final = _rx(
    r"dont (?:ever )?" + _CALL, r"do not " + _CALL, r"never " + _CALL, r"stop " + _CALL + r"\w*",
    r"remove (?:kar do |karo )?(?:my |mera |this )?number", r"number (?:list se )?hata",
    r"(?:my |mera )number (?:hatao|hata do|delete)", _CALL + r" mat", r"mat " + _CALL,
    r"phone mat", r"dnd", r"do not disturb", r"do not call list", r"unsubscribe",
    r"complain", r"complaint", r"trai", r"(?:dobara|dubara|phir se|baar baar) .*mat",
    r"block kar", r"remove me", r"(?:dont|do not) disturb", r"number off",
    r"off (?:your|the) list", r"stop (?:\w+ ){0,2}calls?", r"calls? band kar\w*",
    r"off your (?:\w+ )?list", r"list se (?:nikal|hata)\w*",
    r"(?:delete|remove) (?:my|this) (?:number|no|numbr)",
    r"not to call", r"report this number", r"call me back ever", r"(?:dont|do not) want any calls",
    r"mat ring", r"ndnc", r"marketing calls", r"(?:phone|call) karna band", r"number off",
)
WRONG_PERSON: Final = _rx(
    r"wrong number", r"galat number", r"wrong person", r"galat (?:aadmi|insaan|person)",
    r"no one by that name", r"nobody by that name", r"koi \w+ (?:ji )?yahan nahi",
    r"(?:his|her|their) number (?:anymore|nahi)", r"not (?:his|her) number",
    r"ka number nahi", r"ki number nahi", r"(?:i am|im) not \w+ you",
    r"main (?:woh|wo|vo) nahi", r"kisi aur se baat", r"wrong (?:guy|contact)",
    r"doesnt live here", r"nahi rehte", r"nahi rehti", r"galat (?:jagah|bande|insan)",
    r"there is no \w+ here", r"number galat", r"yahan koi \w+ nahi", r"koi \w+ nahi hai yahan",
    r"no \w+ (?:lives|works) here", r"no one named", r"left (?:this|the) company",
    r"(?:doesnt|does not) work here", r"no such person", r"rong (?:number|no|numbr|person)",
    r"wrong (?:no|numbr)", r"galat (?:numbr|no)\b", r"kisi aur ka (?:number|numbr)",
    r"number (?:badal|change)",
    r"ab mera hai", r"passed away", r"(?:he|she)s retired", r"(?:is )?(?:his|her) wife speaking",
    r"(?:main|mai) (?:unka|unki|unke) (?:driver|beta|beti|bahu|cousin|bhai|naukar|padosi)",
    r"(?:im|i am) (?:his|her) (?:son|daughter|wife|husband|driver|cousin|brother|sister)",
    r"ghar (?:pe|par) nahi (?:hai|hain)", r"sold this (?:shop|business|office)", r"purana number",
    r"yahan nahi milega", r"nobody (?:called|named)", r"not the account holder",
    r"(?:im|i am) (?:just )?the (?:watchman|receptionist|driver|peon|maid)", r"maid hoon",
    r"(?:im|i am) not (?!sure|interested|intrested|free|available|able|keen|ready|convinced)\w+$",
    r"not \w+ wrong number", r"reached a",
)
CALLBACK: Final = _rx(
    r"(?<!take the )(?<!takes the )(?<!make the )(?<!final )"
    + _CALL + r" (?:me|him|us|karo|karna|kijiye|kariye|karein|karenge|kar lena|kar dena|kar do"
    r"|kar dijiye|kar lijiye|back|later|on|at|tomorrow|in|after|next|tonight)",
    _CALL + r" (?:\w+ ){0,2}(?:other time|another time|some time later)",
    r"(?:later|baad|baad me|baad mein|der|kal|parso|tomorrow|evening|morning|shaam|subah|raat"
    r"|week|monday|tuesday|wednesday|thursday|friday|saturday|sunday|vaar|var|baje|pm|am"
    r"|minutes?|hours?|ghante|tarikh|tonight) (?:\w+ )?" + _CALL,
    r"ring me", r"(?:try|contact|reach) me (?:later|tomorrow|kal|after|in|on|next)",
    r"baad (?:me|mein) baat kar\w*", r"(?:kal|parso|later) baat kar\w*",
    r"(?:please|pls) call", r"try me (?:tomorrow|later|kal)",
    r"(?:call|phone) (?:kijiye|kariye|karein)",
    r"aap baad (?:me|mein) (?:karna|karo|kariye)", r"call then",
)
BUSY: Final = _rx(
    r"busy(?! accounting| software)", r"bizz?[yi]", r"driving", r"drive kar raha", r"gaadi chala",
    r"in a meeting", r"meeting (?:me|mein) (?:hoon|hu|hun)",
    r"baat nahi kar (?:sakta|sakti|sakte|paunga|paungi)", r"baat nahi ho payegi",
    r"(?:cant|cannot|can not) talk", r"not a good time", r"bad time", r"time nahi hai",
    r"office (?:me|mein) hoon", r"at work", r"hospital (?:me|mein)", r"in class(?! \d)",
    r"abhi nahi baat", r"baat nahi (?:ho|kar) (?:sakti|sakta|sakte|payegi|payega|paunga)",
    r"bahar hoon", r"(?:im|i am) outside", r"travell?ing", r"safar (?:me|mein)",
    r"(?:in|at) (?:a |the )?meeting", r"in the middle of", r"kha (?:raha|rahi)",
    r"so (?:raha|rahi)",
    r"sleeping",
    r"middle of something", r"(?:kaam|work) (?:me|mein|kar raha|kar rahi)",
    r"free nahi", r"(?:another|other) call", r"mushkil", r"conference", r"in the gym",
    r"at a wedding",
    r"shaadi (?:me|mein) hoon", r"(?:pooja|puja|namaz)", r"cooking", r"boarding", r"flight",
    r"feeding", r"swamped", r"heading (?:into|to)", r"customers? aaye", r"function (?:me|mein)",
    r"on duty", r"(?:kaam|kam) chal raha", r"(?:bat|baat) nahi kar sakta", r"nahi ho payega",
    r"on the road", r"traffic", r"exam hall", r"gaadi (?:me|mein)",
    r"(?:im|i am|m) in (?:office|class)",
    r"(?:cant|cannot) (?:speak|really talk)", r"have to go", r"with a (?:customer|client|patient)",
    r"site pe hoon", r"dukh?aa?n pe (?:hu|hoon)", r"bheed", r"train (?:me|mein) hoon",
    r"school se lene", r"doctor ke paas", r"closing the shop", r"delivery right now",
    r"not a good (?:moment|time)", r"lunch kar", r"mehmaan aaye", r"guests (?:are )?(?:here|over)",
)
NO_NEED: Final = _rx(
    r"(?:dont|do not|dont really) need(?! to (?:ask|check|consult|talk|discuss|run))",
    r"no need(?! to (?:ask|check|consult))", r"zaroorat nahi", r"zarurat nahi",
    r"jarurat nahi", r"no use for", r"kaam chal jata", r"not needed", r"need nahi",
    r"koi kaam ka nahi", r"kis kaam ka", r"bill (?:\w+ )?kam aata",
    r"(?:dont|do not) require", r"not required", r"no (?:requirement|requirment|reqirement)",
    r"requirement nahi",
    r"fine with what we have", r"happy with (?:what|our)", r"satisfied with",
    r"kaam chal raha", r"koi need nahi", r"never use", r"no point", r"ka kya karenge",
    r"(?:dont|do not) have any use", r"no use", r"makes no sense", r"(?:dont|do not) require",
    r"already (?:get|have) free", r"no requirement", r"kyun chahiye", r"software kyun",
    r"(?:website|card|loan|insurance|purifier|software|crm|app|solar|policy|plan|course"
    r"|coaching|system|machine|connection|flat) nahi chahiye",
    r"not useful", r"(?:koi|no) (?:use|fayda|faayda|benefit) nahi", r"pointless", r"no benefit",
    r"why would (?:i|we) need", r"(?:to|toh|phir) (?:\w+ ){0,2}kis liye",
    r"bina (?:iske|is ke|uske) (?:bhi )?(?:\w+ ){0,2}chal", r"(?:hardly|rarely|never) (?:ever )?"
    r"(?:use|travel|need)",
)
# Someone else decides or must be asked: these set ``decision_maker`` false on any
# turn, and make an ``authority`` objection.
AUTHORITY_PEOPLE: Final = _rx(
    r"(?<!aap )(?<!aap hi )(?<!ap )se (?:poochna|puchna|puchhna|poochne|puchne|pooch|puch"
    r"|poochh|puchh|pooche|puche)\w*",
    _WHO + r"(?: ji| sahab| saab)? se (?:baat|discuss|consult|salah|salaah|mashwara"
    r"|permission|ijazat|approval)",
    r"se (?:salah|salaah|mashwara|permission|ijazat|anumati) (?:leni|lena|lunga|lungi|karni"
    r"|karna|lekar|le ke)",
    r"(?:check|confirm|consult|discuss|talk|speak)(?: it| this| that)? (?:with|to) (?:my |our "
    r"|the |his |her )?" + _WHO,
    r"(?:ask|consult) (?:my |our |the |his |her )?" + _WHO, r"ask (?:him|her|them)",
    r"discuss (?:it |this )?with (?:my|our|the)", r"have to ask",
    r"not the decision maker", r"(?:im|i am|i m) not (?:the one who decides|authori[sz]ed"
    r"|allowed|the (?:\w+ )?decision maker)",
    r"not (?:my|mine) (?:call|decision)|(?:decision|call) is not mine|not my decision",
    r"(?:my |mere |meri |hamare |humare |our |the |ye |yeh )?" + _WHO
    + r"\w*(?: (?!i |main |mai |me )\w+)? " + _DECIDES_3P,
    _DECISION + r" (?:\w+ ){0,3}" + _WHO,
    r"(?:decision|call|say) (?:\w+ ){0,2}(?:is )?with (?:my|our|the|mere|hamare) " + _WHO,
    r"without (?:my|our|the|his|her) (?:\w+ )?" + _WHO,
    _WHO + r"(?: ji| sahab)? (?:ki|ka|ke) (?:haan|ha|permission|approval|ijazat|manzoori"
    r"|sign|signature|okay|ok|consent|marzi|paisa)",
    r"(?:unki|unka|unke|inki|uski|their|his|her) (?:permission|approval|ijazat|manzoori"
    r"|consent|marzi)",
    r"unka paisa", r"(?:unse|unhe|unko|inse|usse) (?:pooch|puch|baat)\w*",
    r"(?:talk|speak) to (?:him|her)", r"(?:wife|husband)s okay", r"handles all these",
    r"sabse (?:pooch|puch)\w*", r"ghar (?:me|mein) sab(?:se)? (?:pooch|puch)\w*",
    r"(?:he|she|they|wahi|wohi|woh|wo|vo|unhi)(?: \w+)? (?:decides?|will decide|decide kar\w*"
    r"|takes? (?:the |all |such |these )*decisions?|lete hain)",
    r"(?:thats|its|it s|that is) (?:my |our |the )?" + _WHO + r"(?: s)? (?:department|area"
    r"|domain|call|decision|job|headache)",
    _WHO + r"(?: s)? (?:go ahead|okay|ok|nod|approval|permission|consent|sign off"
    r"|signature|blessing|final word)",
    r"i report to", r"(?:raay|rai|salah|salaah) (?:leni|lena|lunga|lungi|le ke|lekar)",
)
AUTHORITY: Final = re.compile(AUTHORITY_PEOPLE.pattern + "|" + _rx(
    r"approval (?:from|chahiye|leni|lena|lagega|lagegi|needed|required|aayega|aaye|milega"
    r"|ke baad)", r"run (?:it|this) (?:by|past)", r"(?:has|have|needs?) to (?:approve|decide"
    r"|agree|sign off|go through)",
    r"(?:needs?|requires?|get|take|wait for|without) (?:\w+ ){0,2}(?:approval|permission)",
    r"approv(?:e|es|ed)", r"permission (?:chahiye|leni|lena|lagegi|lagega|needed|required)",
    r"(?:get|got) (?:it |this )?cleared", r"cleared by", r"go through (?:our|my|the)",
    r"(?:i|we) (?:just|only) work here", r"(?:im|i am|i m) (?:just|only) (?:an? |the )?(?:\w+ )?"
    r"(?:employee|staff|manager|accountant|clerk|assistant)",
    r"marzi", r"decide alone", r"(?:cant|cannot) decide",
    r"decide nahi kar (?:sakta|sakti|sakte|paunga|paungi|payenge)",
    r"decide (?:karenge|hoga|karega|karegi)", r"final say", r"decides on",
    r"(?:decision|decide) (?:\w+ ){0,2}(?:lete|leti|karte) hain", r"mere ha+th (?:me|mein) nahi",
    r"check with (?:our|my) \w+",
).pattern)
# The caller decides ("I decide", "main khud decide karta hoon", "final decision
# mera hi hota hai", an owner or MD claiming authority). Checked before AUTHORITY:
# "kisi se poochne ki zaroorat nahi, main hi decide karunga".
_ME = r"(?:im|i am|i m|iam)"
_TITLE = (
    r"(?:owner|founder|co founder|cofounder|proprietor|director|md|ceo|malik|maalik|principal"
    r"|chairman|head|managing partner|managing director|decision maker|desicion maker"
    r"|decission maker|decider|authority)"
)
DECIDER: Final = _rx(
    _ME + r" (?!not )(?:(?:the|a|an|only|sole|also|actually|just|one and only) )*(?:\w+ )?"
    + _TITLE + r"(?! s\b)",
    _ME + r" the one who (?:decides|signs|approves|pays|takes)",
    r"i (?:(?:alone|only|myself|personally|can|do|also|always|usually|actually|just|solely"
    r"|mostly) )*(?:decide|approve|sign off|sign (?:the|all)|take (?:all |the |these |such "
    r"|final |every )*(?:decisions?|call)|make (?:all |the |these |final )*(?:decisions?|call)"
    r"|have (?:the )?(?:full |final |complete )?(?:authority|say))",
    r"i (?:handle|manage|look after|take care of|control|oversee) (?:all )?(?:the )?(?:\w+ )?"
    r"(?:purchases?|purchasing|procurement|buying|decisions?|finances?|money matters|payments?"
    r"|spending)",
    r"(?:final )?(?:decision|call|say|approval|faisla) (?:\w+ ){0,2}is (?:mine|with me)",
    r"(?:its|it s|is) (?:my|mine) (?:own )?(?:call|decision)",
    r"(?:its|it s) my (?:own )?(?:company|business|bussiness|shop|clinic|firm|store|money|house"
    r"|office|restaurant)",
    r"(?:its|it s|only|just) me (?:only |alone )?who", r"me who decides",
    _ME + r" the (?:person|one|guy|lady|man|woman) who (?:decides|signs|approves|pays|takes)",
    r"(?:nobody|no one|noone) else",
    r"i (?:handle|manage|look after|take care of|do) (?:it|everything|all of it|it all)(?: all)?"
    r" (?:myself|alone|on my own)",
    r"(?:dont|do not|no) need to (?:ask|check with|consult) (?:anyone|anybody)",
    r"(?:dont|do not) have to ask (?:anyone|anybody)",
    r"(?:nobody|no one|noone) else (?:is involved|decides|will decide)",
    r"i own (?:the|this|a|my) (?:\w+ )?(?:company|business|shop|clinic|firm|store|restaurant"
    r"|factory|house|school)",
    r"as the (?:md|owner|ceo|director|proprietor|founder|head)",
    r"(?:main|mai|mein) (?:(?:khud|hi|akela|akele|akeli) )*(?:(?:sab|sab kuch|saare|saara|sara) )?"
    r"(?:\w+ )?(?:decide|decision|faisla|faisle) (?:kar|le|lu|leta|leti|lunga|lungi|karta|karti"
    r"|karunga|karungi|lete|karte)\w*\b(?! nahi| nhi| na\b)",
    _DECISION + r" (?:\w+ ){0,2}(?:main|mai) (?:hi |khud |khud hi )?(?:leta|leti|lunga|lungi"
    r"|karta|karti|karunga|karungi|hoon|hu|hun)",
    r"(?:mera|meri) (?:hi )?(?:decision|faisla|marzi|call|final decision|approval)",
    r"(?:decision|faisla|marzi|approval|final say|call|final word) (?:bhi |to |toh |hi )?"
    r"(?:mera|meri)\b(?! (?:\w+ )?" + _WHO + r")",
    r"apni marzi", r"mera hi (?:hai|hota)",
    r"(?:main|mai) hi (?:(?:sab|sab kuch|saara|sara) )?(?:dekhta|dekhti|sambhalta|sambhalti"
    r"|owner|malik|maalik|handle|manage)",
    r"(?:owner|malik|maalik|proprietor|md|director|principal|decision maker) (?:main|mai) (?:hi )?"
    r"(?:hoon|hu|hun|hoo)",
    r"(?:main|mai) (?:hi )?(?:\w+ ){0,3}(?:owner|malik|maalik|proprietor|md|director|principal"
    r"|decision maker) (?:hoon|hu|hun|hoo)",
    r"(?:owner|malik|maalik|proprietor) (?:hoon|hu|hun)",
    r"kisi (?:aur )?(?:se )?(?:poochne|puchne|poochna|puchna|puchhne) (?:ki (?:zaroorat|zarurat"
    r"|jarurat|need) )?nahi",
    r"i sign off on", r"i (?:take|make) the (?:final )?call", r"managing director",
    r"(?:decide|faisla|decision) (?:khud )?(?:karunga|karungi|kar lunga|kar lungi|lunga|lungi"
    r"|karta (?:hoon|hu|hun)|karti (?:hoon|hu|hun)|leta (?:hoon|hu|hun)|leti (?:hoon|hu|hun))",
    r"khud (?:hi )?decide kar\w*",
    r"(?:faisla|decision) (?:bhi )?mera", r"sab (?:kuch )?main hi",
)
OBJECTIONS: Final = (
    (Objection.AUTHORITY, AUTHORITY),
    (Objection.TRUST, _rx(
        r"frauds?", r"froud", r"scams?", r"scammers?", r"cheat\w*", r"thag\w*", r"genuine", r"fake",
        r"trust (?:you|this|your)", r"can i trust", r"why should i trust",
        r"dont trust", r"trust nahi", r"proof", r"registered", r"reviews? dikha\w*",
        r"bharosa nahi", r"legit", r"spam", r"really from", r"kaise maan\w*", r"otp",
        r"references?", r"bharosa", r"too good to be true", r"(?:dont|do not) believe",
        r"bol deta hai", r"hidden charges", r"kabhi aise call nahi", r"(?:paise|paisa) le ke",
        r"real bank", r"mis ?sold", r"bad reviews", r"reviews .* terrible",
        r"(?:dont|do not) share",
        r"believe it", r"chit fund", r"office dekhenge", r"kya bharosa", r"sach batao",
        r"kya guarantee", r"(?:company|gst|rbi|sebi|irdai) registration", r"what guarantee",
        r"fishy", r"suspicious", r"shady", r"dodgy",
        r"jhoo?th\w*", r"jhuth\w*", r"lies", r"lying", r"dhokh?a\w*", r"verify kar\w*",
        r"(?:will|let me|first) verify", r"not (?:a )?real",
    )),
    (Objection.COMPETITOR, _rx(
        r"already (?:\w+ ){0,3}(?:use|uses|using|have|has|got|signed|liya|le liya|le rakha"
        r"|lagwa\w*|policy|plan|vendor|contract|account|bought|purchased|installed|taken|with)",
        r"(?:we are|we re|were|im|i am|hum) using", r"use kar rahe",
        r"pehle se (?:\w+ ){0,4}(?:le|li|hai|hain|use|lagwa|liya|rakha|policy)",
        r"contract with", r"use kar(?:te|ti) (?:hai|hain|hoon|hu)",
        r"another (?:company|vendor|provider|bank|agency)", r"dusri company",
        r"other (?:company|vendor|provider|bank)", r"competitor", r"signed with",
        r"zoho", r"salesforce", r"hubspot", r"lic", r"tata power",
        r"allready \w+", r"already (?:\w+ ){0,3}(?:gives?|got|taken|with)", r"laga hua hai",
        r"(?:we r|v r|we are|were) with", r"signed up with",
        r"(?:loan|policy) (?:\w+ ){0,2}chal (?:raha|rahi)",
        r"(?:ca|bhai|broker) hi", r"usi se", r"using (?:\w+ ){0,3}for years",
        r"another (?:software|brand|installer)",
        r"pehle se (?:\w+ ){0,4}chal",
        r"(?:current|existing|present) (?:provider|vendor|bank|insurer|supplier|agency|agent"
        r"|broker|operator|installer|company)",
        r"(?:our|my|hamara|humara|mera) (?:\w+ )?(?:agent|broker|vendor|provider|supplier|installer"
        r"|agency) (?:handles|does|karta|sambhalta|takes care)",
        r"(?:we|v) (?:r|are) using",
        r"(?:got|had|get) (?:my|our|it|the) (?:\w+ )?(?:done|made|built|installed|designed)"
        r" (?:\w+ ){0,3}(?:by|from|through)", r"all ready (?:have|using|got|taken|use)",
    )),
    (Objection.PRICE, _rx(
        r"expensive", r"mehe?nga", r"costly", r"too much", r"too high", r"bahut high",
        r"(?:cant|cannot|can not) afford", r"afford nahi", r"paisa nahi", r"paise nahi",
        r"out of (?:my |our )?budget", r"over (?:my |our )?budget", r"budget se (?:bahar|zyada)",
        r"cheaper", r"sasta", r"kam karo", r"kam kijiye", r"way over", r"upar nahi ja",
        r"zyada hai", r"jyada hai", r"not more than", r"se zyada nahi", r"discount do",
        r"budget nahi", r"beyond (?:my |our )?budget", r"(?:above|more than) (?:my |our )?budget",
        r"budget (?:\w+ )?kam", r"kam budget", r"low budget", r"tight budget",
        r"(?:dont|do not|dont really) have (?:\w+ ){0,3}(?:budget|money|paisa)",
        r"(?:cant|cannot|can not|not) afford\w*", r"affordable nahi", r"higher than",
        r"more than (?:what|we)", r"too steep", r"steep", r"out off",
        r"loot", r"kharch karega", r"justify", r"upfront cost", r"to much", r"cost kills",
        r"bahut upar", r"(?:bahut|too|very|kaafi) (?:zyada|jyada|high|hi)", r"aadhe daam",
        r"(?:quoted|charge|charges) (?:us )?(?:much )?less", r"kam (?:me|mein) (?:mil|de|bana)",
        r"mil jata hai", r"no way", r"bahut pad", r"our limit",
        r"beyond (?:what|my|our)", r"to (?:high|costly|expensive)",
        r"(?:is|its|thats|that is) (?:a lot|quite a lot|a bit much)", r"not at (?:this|that) price",
        r"costs? (?:double|twice)", r"(?:itne|is price) (?:me|mein|pe) nahi",
        r"(?:cant|cannot|can not) pay (?:that|this|so) much", r"that much (?:for|money)",
        r"(?:bahut|too|very|kaafi|thoda|quite) heavy", r"out of (?:our|my) reach", r"pricey",
        r"zyada lag", r"(?:itna|itne|utna|utne) (?:paisa |paise )?(?:nahi|nhi) (?:hai|hain|de|kar)",
        r"itne paise", r"(?:very|too|bahut|kaafi) (?:costly|pricey)",
    )),
    (Objection.NO_NEED, NO_NEED),
    (Objection.TIMING, _rx(
        r"not (?:right )?now", r"abhi nahi", r"next year", r"agle saal", r"after diwali",
        r"diwali ke baad", r"baad (?:me|mein) dekhenge", r"mahine baad", r"months? later",
        r"not the right time", r"anytime soon", r"later in the year", r"too early",
        r"abhi (?:ka|koi) plan nahi", r"abhi nahi le sakte", r"not planning",
        r"baad (?:me|mein) dekhte", r"think about it", r"let me think", r"soch ?ke bata\w*",
        r"sochna padega", r"sochenge", r"will think", r"time to think",
        r"thoda time (?:do|chahiye)", r"time sahi nahi", r"sahi time nahi", r"right time nahi",
        r"abhi (?:\w+ )?nahi le",
        r"maybe later", r"(?:will )?see later", r"in a few months", r"next financial year",
        r"once the", r"abhi ruk", r"settle ho", r"not in (?:a )?hurry", r"till the",
        r"jab .* tab lenge",
        r"abhi baad (?:me|mein)$",
        r"saal baad", r"mood nahi", r"sochne ka", r"after (?:the|my) \w+", r"not ready",
        r"not this time",
        r"not now", r"not at the moment", r"later maybe", r"baad (?:me|mein) sochenge",
        r"will look at it", r"ke baad (?:lenge|dekhenge)",
        r"not this (?:month|week|quarter|year|time|season)", r"should wait", r"revisit",
        r"after (?:holi|diwali|eid|navratri|dussehra|pongal|onam|christmas|new year|festivals?"
        r"|the festival season)",
        r"(?:holi|diwali|eid|navratri|dussehra|pongal|onam|tyohar|tyohaar) ke baad",
        r"wait (?:a bit|a while|for some time|kuch din)",
        r"(?:kuch|thode|thoda|some|few|a few|do|teen|2|3) (?:\w+ )?(?:time|din|dino|mahine|mahino"
        r"|months?|weeks?|saal) (?:baad|ke baad|later)", r"baad (?:me|mein) (?:lenge|le lenge)",
        r"is waqt nahi", r"not the time", r"(?:peak|busy|wedding|festive|shaadi ka) season",
        r"too soon", r"new financial year", r"after (?:\w+ ){0,2}months?", r"ke baad sochenge",
        r"abhi (?:\w+ ){0,2}aane do", r"(?:wait|ruk) (?:\w+ )?(?:karenge|karte)",
    )),
)
NOT_INTERESTED: Final = _rx(
    r"not (?:\w+ )?interested", r"not intrested", r"not intersted", r"interest nahi",
    r"intrest nahi", r"thanks but no", r"interested nahi",
    r"nahi chahiye", r"no thanks", r"no thank you", r"(?:dont|do not) want", r"nahi lena",
    r"rehne do", r"(?:ill|i will) pass", r"not looking", r"nahi lenge", r"nahi karna",
    r"(?:no )?(?:im|i am) (?:good|fine|ok) thanks?", r"not for me", r"(?:im|i am) good$",
    r"not going to buy", r"nahi karenge", r"nai chahiye", r"skip it", r"say no",
    r"not keen", r"rather not", r"no intrest", r"not intersted", r"nahi hoga",
)
COMMITTED: Final = _rx(
    r"lets do it", r"lets go ahead", r"(?:want|like) to go ahead", r"go ahead (?:and|with)",
    r"sign me up", r"book kar\w*", r"le lenge", r"le lunga", r"le lungi", r"process start",
    r"register me", r"close it", r"(?:want|like) to (?:buy|purchase|install|take)",
    r"count me in", r"demo fix", r"lagwa do", r"lagwa dijiye", r"start kar do",
    r"(?:lets )?proceed", r"order (?:kar do|karo|kar dijiye|place)", r"kar do order",
    r"i want it", r"i want this", r"final kar\w*", r"finali[sz]e", r"go for it",
    r"(?:im|i am) in$", r"register me", r"registration kar\w*", r"kar (?:do|dijiye) registration",
    r"enrol me", r"go with", r"lagwa lete", r"apply kar\w*", r"sign us up", r"shuru kar\w*",
    r"like to try", r"count (?:\w+ ){0,2}in", r"(?:we|i) want (?:it|this|one|your)",
    r"want to switch",
    r"(?:ill|i will|well|we will) take", r"move forward", r"go a ?head", r"deal pakki",
    r"ready hain", r"send the technician", r"activate", r"installed this week",
    r"le lete", r"kar do shuru", r"keen on", r"yahi le", r"(?:block|book) (?:the|it|this|one)",
    r"want this", r"hum lena chahenge", r"lena chahenge", r"policy issue", r"taiyaar hoon",
    r"(?:wo|we) would (?:definitely )?like to", r"lets do the", r"lets start",
    r"shuru karo", r"process (?:my|the)", r"karwa (?:do|denge|dijiye)",
    r"bana (?:do|dijiye)", r"banwa (?:do|dijiye|lete|denge)",
)
ASK_PRICE: Final = _rx(
    r"price", r"pricing", r"prices", r"cost", r"costs", r"rate", r"rates",
    r"(?<!area )(?<!size )(?<!space )(?<!capacity )(?<!speed )(?<!warranty )(?<!tenure )"
    r"kitn[aei](?! (?:saal|sal|log|din|time|baje|branches|employees|years|members|ghante|pages)\b)",
    r"how much", r"emi", r"installments?", r"charges?", r"fees?", r"premium",
    r"kharcha (?:kya|kitna|aayega|hoga|lagega)", r"discount", r"priced", r"cheapest", r"kitne ka",
    r"paisa lagega", r"paise lagenge",
    r"offers?", r"scheme",
)
ASK_DETAILS: Final = _rx(
    r"details?", r"brochure", r"whatsapp", r"email", r"e mail", r"mail", r"pdf",
    r"catalog\w*", r"features?", r"website", r"link", r"case stud\w*", r"samjha\w*",
    r"tell me more", r"how does it work", r"what all", r"included", r"warranty", r"more info",
    r"information", r"bhej", r"send", r"demo", r"batao", r"bataiye", r"baare (?:me|mein)",
    r"(?:more|tell me|know) about (?:it|this|the product)", r"how (?:\w+ ){0,4}works?",
    r"what (?:all )?(?:services|products|plans|options)", r"services",
    r"what (?:exactly )?(?:does|do) (?:your|it|this|the)",
    r"(?:does|do|can|will) (?:the|it|this|your) ",
    r"do you (?:work|have|provide|serve|offer|give|also)",
    r"is there a", r"coverage", r"covered", r"(?:does|will) (?:\w+ ){0,3}cover", r"integrat\w*",
    r"\bapp\b", r"offline", r"process", r"documents?",
    r"tenure", r"possession", r"credit limit (?:on|kitni|kya|milegi)", r"hoti hai kya",
    r"kitne din", r"pages", r"parking", r"invoice",
    r"milta hai", r"milegi", r"hota hai kya", r"kaise (?:kaam|karta|milta|karte)", r"floor plan",
    r"terms", r"technology", r"services?", r"chalega kya", r"hai kya$", r"dashboard",
    r"how long does", r"which banks",
)
INTERESTED: Final = _rx(
    r"interested", r"interest hai", r"intrested", r"sounds (?:good|great|nice)",
    r"pasand", r"mujhe chahiye", r"haan chahiye", r"what we need", r"lena hai", r"chahiye",
    r"i like it", r"ac?cha hai", r"achha hai", r"good offer", r"badhiya", r"sounds interesting",
    r"interesting hai", r"love (?:this|it|the idea)", r"(?:great|good) idea",
    r"what (?:i|we) (?:was|were|have been|ve been) looking for", r"exactly what",
    r"(?:lagwana|karwana|lena|kharidna) (?:hai|chahta|chahti|chahenge)",
)
CALL_QUESTION: Final = _rx(
    r"recording", r"recorded", r"robot", r"\bbot\b", r"kisne diya", r"kaise pata",
    r"(?:get|got|find|found) my (?:number|details|contact|info\w*)", r"my number from",
    r"who gave you", r"number kahan",
    r"kis baare (?:me|mein) call", r"which company", r"kaun ?si company", r"konsi company",
    r"kis company", r"who is this", r"whos this", r"who are you",
    r"(?:whos|who is) (?:calling|speaking)",
)
QUESTION: Final = _rx(
    r"who is this", r"who are you", r"whos this", r"kaun", r"how did you get",
    r"(?:whos|who is) (?:calling|speaking)",
    r"number kahan", r"kahan se", r"robot", r"computer", r"real person", r"human",
    r"recorded", r"your name", r"aapka naam", r"which company", r"kaunsi company",
    r"office kahan", r"why are you calling",
    r"(?:get|got|find|found) my number", r"my number from",
    r"kyun call", r"kitne saal", r"kya (?:aap|ye|yeh)", r"where are you", r"kab se",
    r"what is this", r"what do you", r"is this", r"are you", r"kis company", r"machine",
    r"bot", r"(?:speaking|talking) to a", r"who gave you",
    r"kaun ?si company", r"konsi company", r"kisne diya", r"kaise pata", r"kis city",
    r"\bkon\b", r"recording", r"kaunse? bank", r"kis department", r"automated", r"listening to",
    r"hu is this", r"who s", r"who am i", r"insaan", r"kis liye", r"regarding",
    r"(?:bank|company) se (?:\w+ ){0,3}ya", r"customer care", r"your company been",
)
QUESTION_START: Final = re.compile(
    r"^(?:(?:ok|okay|achha|accha|haan|but|and|sir|madam) )*(?:(?:is|do) (?:it|this|that|there"
    r"|the|your|you|i|we|they|he|she)|are|does|did|can|could|will|would|what|whats|why|how"
    r"|where|when|who|whom|which|kya|kaise|kab|kahan|kyun|kyon|kaun|am i)\b"
)
# A statement about the caller, their family or business, opening in the first
# person ("we run two clinics", "main ek boutique chalati hoon", "hamari factory
# Rajkot mein hai"): in DISCOVERY and QUALIFICATION a plain fact answering the bot.
FACT_STATEMENT: Final = re.compile(
    r"^(?:(?:sir|madam|ji|actually|basically|well|so|see|dekhiye|dekho|bhai) )*(?:we|i|im|i m"
    r"|iam|ive|weve|were|our|my|us|hum|humlog|hum log|hamara|hamari|hamare|humara|humari"
    r"|humare|main|mai|mera|meri|mere|apna|apni|mujhe|hume|humein|hamein|mujhko)\b"
)
UNSURE: Final = _rx(
    r"not sure", r"pakka nahi", r"pata nahi", r"shayad", r"maybe", r"may be", r"dont know",
    r"no idea", r"kuch keh nahi", r"decide nahi kiya",
)
# Words that may stand beside a hedge in a turn that only hedges ("pata nahi abhi").
HEDGE_FILLERS: Final = _vocabulary(
    "i im am abhi yet sir ji madam bhai yaar actually really honestly hmm um uh well so now"
    " right haan toh to abhi tak ki kya bataun main mai"
)
LINE_OR_HOLD: Final = _rx(
    r"hold on", r"ek minute", r"1 minute", r"one minute", r"one second", r"1 second",
    r"ek second", r"ruko", r"rukiye", r"wait", r"aawaz", r"awaaz", r"awaz", r"cant hear",
    r"cannot hear", r"breaking", r"zor se", r"hindi (?:me|mein)", r"speak in",
    r"english (?:me|mein)", r"network", r"sunai nahi", r"not audible", r"language",
    r"repeat", r"say (?:that )?again", r"pardon", r"come again", r"(?:dobara|phir se) bol\w*",
    r"cut ho rahi", r"louder", r"speak (?:a little |more )?slowly",
)
GREETING_WORDS: Final = _vocabulary(
    "hello helo hallo hi hii hey namaste namaskar namaskaar pranam ram salaam salam"
    " alaikum walaikum assalamu assalamualaikum good morning afternoon evening there ji haan sir"
    " madam hanji haanji sa jai shree krishna jinendra sat sri akal kaise ho bhaiya"
)
GREETING_CORE: Final = _vocabulary(
    "hello helo hallo hi hii hey namaste namaskar namaskaar pranam ram salaam salam"
    " morning afternoon evening assalamualaikum jinendra krishna akal"
)
GOODBYE_CORE: Final = _vocabulary(
    "thanks thank thankyou bye by goodbye tata alvida dhanyavaad dhanyawad shukriya"
)
GOODBYE_WORDS: Final = _vocabulary(
    "ok okay thanks thank you thankyou bye by goodbye good tata alvida dhanyavaad dhanyawad"
    " shukriya"
    " ji sir madam"
)
ACK_WORDS: Final = _vocabulary(
    "hmm hm hmmm mm haan han ha ji jee ok okay okk k achha accha acha theek thik hai right"
    " yes yeah yep ya yah sure boliye bolo aage go on i see uh huh alright fine got it bolte"
    " rahiye continue samjha samajh gaya gayi understood please hanji bataiye listening sun raha"
    " rahi hoon im noted"
)
# A yes-word opening the turn ("haan budget hai 3 lakh", "yes we do use a crm").
AFFIRM: Final = re.compile(
    r"^(?:(?:hmm|uh|um|arre|oh|sir|madam|ok|okay|achha|accha|ji) )*(?:yes|yeah|yep|yup|haan|han"
    r"|ha|hanji|haanji|ji|correct|absolutely|bilkul|sahi|definitely|sure|of course|theek hai"
    r"|thik hai|ok|okay|speaking|achha|accha|perfect|great|excellent|wonderful|awesome|done"
    r"|pakka|exactly|right(?! now| away)|ya|yea)\b"
)
DENY_START: Final = re.compile(
    r"^(?:(?:uh|um|hmm|arre|are|sorry) )*(?:no|nahi|nahin|nai|na|naa|nope|nah)\b"
    r"(?! (?:plans?|fixed|timeline|time ?frame|particular|requirement|requirment)\b)"
)
FILLERS: Final = re.compile(r"\b(?:uh|um|umm|arre|are|sir|madam|bhai|yaar)\b")
ASKS: Final = _rx(
    r"what", r"whats", r"how", r"kya", r"kitn[aei]", r"kaise", r"kab", r"which", r"kaun\w*",
    r"kyun", r"why", r"price", r"cost", r"rate",
)
