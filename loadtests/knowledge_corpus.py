"""A generated product catalogue with questions whose answers are known: the corpus of the
retrieval benchmark (loadtests/retrieval_benchmark.py) and of the relevance tests.

240 documents (48 kinds of product, 5 makers each), each a short product sheet with a model
code, what the product does, where it is made, its warranty and weight. 100 questions, each
answered by exactly one document, of three sorts that favour different retrievers:

- `code` (40): "How long is the warranty of the QF-2231?" Only the model code identifies the
  document; a small embedding model sees codes as noise, full text matches them exactly.
- `paraphrase` (40): "I want something that keeps my coffee hot all day, made in Lisbon." The
  product is described in other words than the sheet's, so full text matches little but the
  city, while the embedding recognises the product.
- `named` (20): the product's own name and maker; both retrievers should manage.

Deterministic (a fixed seed): every run, test and benchmark sees the same corpus.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# kind, how the sheet describes it, how a customer asks for it
KINDS = [
    ("vacuum flask", "Its double steel wall keeps drinks hot for twelve hours.",
     "something that keeps my coffee hot all day"),
    ("electric kettle", "It boils a litre of water in under three minutes.",
     "a device to heat water quickly for tea"),
    ("rice cooker", "It steams grains and switches to keep-warm when they are done.",
     "an appliance that prepares grains automatically"),
    ("espresso machine", "A fifteen-bar pump pulls a concentrated shot of coffee.",
     "a machine for strong short coffees"),
    ("stand mixer", "A planetary beater kneads bread dough and whips cream.",
     "a kitchen appliance to knead dough for baking"),
    ("air purifier", "A HEPA filter removes pollen, dust and smoke from a room.",
     "a gadget that cleans the air at home for allergy sufferers"),
    ("dehumidifier", "It pulls moisture out of damp basements into a tank.",
     "a machine to dry out a humid cellar"),
    ("space heater", "A ceramic element warms a small office in minutes.",
     "a small device to warm up a cold room"),
    ("ceiling fan", "Five blades move air quietly to cool a bedroom in summer.",
     "something mounted overhead that cools the room by circulating air"),
    ("robot vacuum", "It maps the floor and sweeps dust on its own schedule.",
     "an autonomous cleaner that tidies floors by itself"),
    ("cordless drill", "A brushless motor drives screws and bores holes in wood.",
     "a battery power tool for making holes in walls"),
    ("angle grinder", "A spinning abrasive disc cuts metal and smooths welds.",
     "a tool for cutting steel pipes"),
    ("hedge trimmer", "Dual reciprocating blades shape shrubs and bushes.",
     "a garden tool to shape overgrown bushes"),
    ("lawn mower", "A rotating blade cuts grass to an adjustable height.",
     "a machine to keep the grass in my yard short"),
    ("pressure washer", "A high-pressure jet strips dirt from patios and cars.",
     "a machine that blasts grime off a terrace with water"),
    ("camping tent", "A waterproof flysheet shelters two people overnight.",
     "a portable shelter to sleep outdoors"),
    ("sleeping bag", "Down insulation keeps a sleeper warm below freezing.",
     "something warm to sleep in on a cold mountain night"),
    ("hiking backpack", "A padded hip belt carries forty litres of gear on the trail.",
     "a bag to carry equipment on long walks in the hills"),
    ("trekking pole", "An adjustable aluminium shaft steadies the walker downhill.",
     "a stick that helps balance on steep descents"),
    ("headlamp", "A strap-mounted LED lights the path hands-free at night.",
     "a light worn on the forehead"),
    ("road bicycle", "A carbon frame and drop handlebars suit fast riding on tarmac.",
     "a lightweight bike for racing on paved streets"),
    ("bicycle helmet", "A foam shell absorbs the impact of a fall from a bike.",
     "head protection for cycling"),
    ("running shoe", "A cushioned sole absorbs shock mile after mile.",
     "footwear for jogging long distances"),
    ("yoga mat", "A grippy rubber surface keeps hands from slipping in poses.",
     "a non-slip pad for stretching exercises"),
    ("dumbbell", "A knurled handle holds iron weight plates for strength training.",
     "a hand weight for building arm muscles"),
    ("rowing machine", "A water flywheel simulates pulling an oar on a lake.",
     "indoor exercise equipment that imitates paddling a boat"),
    ("smartwatch", "It tracks heart rate and shows notifications on the wrist.",
     "a wearable that counts my pulse and steps"),
    ("noise-cancelling headphones", "Microphones cancel engine hum on long flights.",
     "headphones that block out the sound of airplanes"),
    ("bluetooth speaker", "A waterproof body plays music by the pool for ten hours.",
     "a portable wireless device that plays songs outdoors"),
    ("e-reader", "An e-ink screen shows books without glare in bright sun.",
     "a device for reading novels on the beach"),
    ("mechanical keyboard", "Tactile switches click under every keystroke.",
     "a clicky input device for typing"),
    ("webcam", "A wide-angle lens streams sharp video for meetings.",
     "a camera for video calls from my desk"),
    ("external hard drive", "Two terabytes back up photos over USB.",
     "storage to keep copies of my pictures"),
    ("wifi router", "Three antennas spread a wireless network through a house.",
     "a box that provides internet to every room"),
    ("graphics tablet", "A pressure-sensitive pen draws straight into design software.",
     "a pad artists use to sketch digitally"),
    ("drone", "Four rotors lift a stabilised camera for aerial photos.",
     "a flying camera for pictures from above"),
    ("office chair", "An adjustable lumbar support eases long days at a desk.",
     "a seat that protects my back while I work"),
    ("standing desk", "Electric legs raise the worktop to standing height.",
     "a table whose height changes so I can work on my feet"),
    ("bookshelf", "Five oak shelves hold a library of hardbacks.",
     "furniture to store many books"),
    ("mattress", "Pocket springs and memory foam support a sleeping back.",
     "something comfortable to sleep on in bed"),
    ("duvet", "A feather filling keeps a bed warm through winter.",
     "a thick bed cover for cold nights"),
    ("table lamp", "A dimmable bulb casts warm light over a reading chair.",
     "a light for the bedside or desk"),
    ("baby stroller", "A folding frame pushes an infant through the park.",
     "something with wheels to take a newborn for walks"),
    ("car seat", "A five-point harness secures a toddler in the back of a car.",
     "a seat that keeps a small child safe while driving"),
    ("dog bed", "A washable cushion gives a large dog a place to rest.",
     "somewhere soft for my puppy to sleep"),
    ("cat litter box", "A hooded tray contains odour for an indoor cat.",
     "a toilet for a house cat"),
    ("aquarium filter", "A pump pushes tank water through sponge and charcoal.",
     "a device that keeps fish tank water clean"),
    ("watering can", "A long spout delivers a gentle shower to seedlings.",
     "a container for giving water to garden plants"),
]  # fmt: skip
MAKERS = ["Tern", "Halden", "Corvo", "Mistral", "Pellow"]
CITIES = ["Lisbon", "Osaka", "Monterrey", "Gdansk", "Porto Alegre", "Tampere", "Cluj",
          "Kaohsiung", "Leeds", "Valencia", "Brno", "Izmir", "Pune", "Ghent"]  # fmt: skip
COLOURS = ["graphite", "sand", "forest green", "ocean blue", "brick red", "ivory"]
SEED = 20261201


@dataclass(frozen=True, slots=True)
class Document:
    doc_id: str
    filename: str
    text: str
    code: str
    kind: str
    maker: str
    city: str
    warranty_months: int


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    answer: str  # the doc_id of the one document that answers it
    sort: str  # code | paraphrase | named


def _code(rng: random.Random, used: set[str]) -> str:
    while True:
        letters = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(2))
        code = f"{letters}-{rng.randint(1000, 9999)}"
        if code not in used:
            used.add(code)
            return code


def documents() -> list[Document]:
    rng = random.Random(SEED)
    used: set[str] = set()
    docs = []
    for kind_index, (kind, feature, _) in enumerate(KINDS):
        cities = rng.sample(CITIES, len(MAKERS))  # one kind's makers are in distinct cities
        for maker_index, maker in enumerate(MAKERS):
            code = _code(rng, used)
            city = cities[maker_index]
            warranty = rng.choice([6, 12, 18, 24, 36, 48, 60])
            weight = rng.randint(80, 9000)
            colour = rng.choice(COLOURS)
            text = (
                f"{maker} {kind}, model code {code}\n\n"
                f"The {maker} {kind} is part of our {rng.choice(['home', 'pro', 'outdoor'])}"
                f" range. {feature}\n\n"
                f"Specifications: finished in {colour}, it weighs {weight} grams and is"
                f" manufactured in {city}. Every unit of the {code} carries a warranty of"
                f" {warranty} months from the date of purchase."
            )
            doc_id = f"doc-{kind_index:02d}-{maker_index}"
            docs.append(Document(doc_id, f"{doc_id}.txt", text, code, kind, maker, city, warranty))
    return docs


def questions(docs: list[Document] | None = None) -> list[Question]:
    docs = docs or documents()
    rng = random.Random(SEED + 1)
    by_kind = {kind: [d for d in docs if d.kind == kind] for kind, _, _ in KINDS}
    asks = {kind: ask for kind, _, ask in KINDS}
    chosen = rng.sample(docs, 100)
    out = []
    for index, doc in enumerate(chosen):
        if index < 40:
            text = rng.choice(
                [f"How many months of warranty does the {doc.code} have?",
                 f"What warranty comes with model {doc.code}?",
                 f"Is the {doc.code} still covered after a year?"]
            )  # fmt: skip
            out.append(Question(text, doc.doc_id, "code"))
        elif index < 80:
            assert len({d.city for d in by_kind[doc.kind]}) == len(MAKERS)
            text = rng.choice(
                [f"I need {asks[doc.kind]}, preferably one made in {doc.city}.",
                 f"Do you sell {asks[doc.kind]} that is produced in {doc.city}?",
                 f"Looking for {asks[doc.kind]} from the factory in {doc.city}: what is the"
                 " warranty?"]
            )  # fmt: skip
            out.append(Question(text, doc.doc_id, "paraphrase"))
        else:
            text = f"How heavy is the {doc.maker} {doc.kind}?"
            out.append(Question(text, doc.doc_id, "named"))
    return out
