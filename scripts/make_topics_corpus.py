"""Write nlu_lite/data/topics.csv: a small labelled corpus for exploring embeddings.

Six topics, each made of subject + predicate sentences drawn with a fixed seed, plus
hand-written sentences where a polysemous word ("bank", "bat", "mouse", ...) appears in two
senses that belong to two different topics. Deterministic: running it twice gives the same
bytes. Run from the repository root::

    python scripts/make_topics_corpus.py          # writes the file
    python scripts/make_topics_corpus.py --check  # exits 1 if the file differs
"""
from __future__ import annotations

import argparse
import csv
import io
import random
import re
import sys
from pathlib import Path

SEED = 6
PER_TOPIC = 45
TARGET = Path(__file__).resolve().parent.parent / "nlu_lite" / "data" / "topics.csv"

TOPICS: dict[str, tuple[list[str], list[str]]] = {
    "finance": (
        ["The investor", "My uncle", "The accountant", "A small business owner", "The young couple", "Our family"],
        [
            "moved the savings into a fixed-rate deposit account.",
            "sold the shares after the disappointing earnings report.",
            "took out a mortgage to buy a house.",
            "paid off the credit card debt early.",
            "asked the lender for a loan with a lower interest rate.",
            "compared the fees of two brokers.",
            "put part of the salary into an index fund.",
            "checked the monthly budget for unexpected costs.",
            "worried that inflation would eat the savings.",
            "received a dividend payment this quarter.",
        ],
    ),
    "nature": (
        [
            "The hikers", "The villagers", "The park ranger", "The old fisherman", "A group of students",
            "The photographer",
        ],
        [
            "followed the stream through the pine forest.",
            "watched the fog lift over the mountain lake.",
            "found fresh tracks in the snow near the waterfall.",
            "rested under an oak tree in the meadow.",
            "crossed the valley before the storm arrived.",
            "listened to the wind in the tall grass.",
            "saw an eagle circling above the cliffs.",
            "camped beside a quiet lake at sunset.",
            "walked along the rocky coast at low tide.",
            "waited in the forest for the rain to stop.",
        ],
    ),
    "sports": (
        ["The striker", "Our team", "The young tennis player", "The goalkeeper", "The marathon runner", "The captain"],
        [
            "scored twice in the second half of the final.",
            "trained hard all week before the championship.",
            "won the match after a long tie-break.",
            "celebrated the victory with the fans in the stadium.",
            "was injured during the warm-up before the game.",
            "broke the national record in the relay.",
            "studied videos of the opponent before the tournament.",
            "lost the semi-final on penalties.",
            "signed a new contract with the club.",
            "ran ten laps around the track every morning.",
        ],
    ),
    "cooking": (
        ["The chef", "My grandmother", "The baker", "Our neighbour", "The young cook", "The restaurant owner"],
        [
            "simmered the tomato sauce with garlic and basil.",
            "kneaded the dough and let it rise overnight.",
            "roasted the vegetables with olive oil and rosemary.",
            "seasoned the soup with salt, pepper and fresh herbs.",
            "baked a lemon cake for the birthday party.",
            "grilled the fish and served it with rice.",
            "whisked the eggs with sugar until they were fluffy.",
            "chopped onions and carrots for the stew.",
            "tasted the curry and added more ginger.",
            "served warm bread with butter and honey.",
        ],
    ),
    "technology": (
        ["The engineer", "Our startup", "The software developer", "The IT team", "The student", "The data scientist"],
        [
            "deployed the new version of the app to the cloud.",
            "fixed a memory leak in the database server.",
            "wrote unit tests for the payment service.",
            "upgraded the laptop with more memory and a faster disk.",
            "trained a neural network on the image dataset.",
            "configured the firewall on the office network.",
            "reviewed the code before merging the pull request.",
            "installed the latest operating system update.",
            "built a dashboard to monitor the servers.",
            "migrated the website to a faster hosting provider.",
        ],
    ),
    "health": (
        ["The doctor", "The nurse", "The family physician", "The surgeon", "The pharmacist", "The specialist"],
        [
            "measured the blood pressure before the appointment.",
            "recommended more sleep and regular exercise.",
            "prescribed antibiotics for the throat infection.",
            "checked the results of the blood test.",
            "explained the side effects of the new medicine.",
            "scheduled a follow-up visit at the clinic.",
            "monitored the patient after the knee operation.",
            "asked about allergies before giving the vaccine.",
            "reviewed the X-ray of the broken wrist.",
            "advised drinking water during the heat wave.",
        ],
    ),
}

# keyword -> ((sense, topic, sentences), (sense, topic, sentences)); every sentence holds the keyword as a word.
POLYSEMY: dict[str, tuple[tuple[str, str, list[str]], ...]] = {
    "bank": (
        ("money", "finance", [
            "She opened a savings account at the bank on Main Street.",
            "The bank approved our loan after checking the credit history.",
            "He withdrew cash from the bank before the trip.",
            "The bank charged a fee for the international transfer.",
            "After the merger, the bank closed three of its branches.",
        ]),
        ("river", "nature", [
            "We had a picnic on the grassy bank of the river.",
            "The canoe drifted towards the muddy bank.",
            "Wild flowers grew along the steep bank of the stream.",
            "The heron stood still on the river bank, waiting for fish.",
            "After the flood, the water had washed away part of the bank.",
        ]),
    ),
    "bat": (
        ("sports gear", "sports", [
            "He swung the bat and hit the ball over the fence.",
            "The cricket player oiled his new willow bat.",
            "She gripped the bat tightly as the pitcher threw the ball.",
            "The coach gave the rookie a lighter bat.",
            "His bat cracked when he hit the fast ball.",
        ]),
        ("animal", "nature", [
            "A bat flew out of the cave at dusk.",
            "The bat uses echoes to find insects in the dark.",
            "We saw a small bat hanging upside down from the barn roof.",
            "The fruit bat slept in the tall tree during the day.",
            "At night the bat hunted moths above the pond.",
        ]),
    ),
    "mouse": (
        ("computer", "technology", [
            "Click the left mouse button to open the file.",
            "He plugged a wireless mouse into the laptop.",
            "Move the mouse pointer to the top of the screen.",
            "The gaming mouse has six programmable buttons.",
            "My mouse stopped working after the driver update.",
        ]),
        ("animal", "nature", [
            "A field mouse ran across the meadow.",
            "The owl caught a mouse near the hedge.",
            "The little mouse gathered seeds for the winter.",
            "A mouse built its nest under the fallen log.",
            "The cat watched the mouse hiding in the grass.",
        ]),
    ),
    "python": (
        ("language", "technology", [
            "She wrote a Python script to clean the dataset.",
            "The course teaches Python for data analysis.",
            "He upgraded the project to the latest Python version.",
            "Python makes it easy to read files and parse text.",
            "The team rewrote the service in Python last year.",
        ]),
        ("snake", "nature", [
            "The python wrapped itself around the tree branch.",
            "A large python swallowed a rabbit whole.",
            "The python lay still in the warm swamp.",
            "Rangers found a python sleeping near the river.",
            "The python slid silently through the jungle.",
        ]),
    ),
    "apple": (
        ("fruit", "cooking", [
            "She baked an apple pie with cinnamon.",
            "He sliced a crisp green apple for the salad.",
            "The apple was sweet and juicy.",
            "Grandma made apple sauce to serve with the roast.",
            "Add a grated apple to the batter.",
        ]),
        ("company", "technology", [
            "Apple released a new phone with a better camera.",
            "Apple announced its quarterly results today.",
            "The developers attended the Apple conference in California.",
            "Apple updated its laptop operating system.",
            "The new Apple tablet has a brighter screen.",
        ]),
    ),
    "chip": (
        ("snack", "cooking", [
            "He dipped a potato chip into the salsa.",
            "She crunched a tortilla chip covered in guacamole.",
            "Every chip in the bowl was perfectly crisp and salted.",
            "He fried each chip in hot oil until it was golden.",
            "The last chip in the bag was broken.",
        ]),
        ("processor", "technology", [
            "The new chip doubles the speed of the graphics card.",
            "Engineers designed a chip that uses less power.",
            "The phone's chip handles the camera processing.",
            "A shortage of the memory chip delayed car production.",
            "The factory etches each chip on a silicon wafer.",
        ]),
    ),
    "virus": (
        ("disease", "health", [
            "The flu virus spreads quickly in winter.",
            "Doctors identified the virus in the blood sample.",
            "The vaccine protects against the virus.",
            "The virus attacked the lining of the lungs.",
            "Wash your hands to stop the virus from spreading.",
        ]),
        ("malware", "technology", [
            "A computer virus deleted files on the shared drive.",
            "The security program removed the virus from the laptop.",
            "The email attachment contained a virus.",
            "The virus encrypted the office computers.",
            "IT warned staff about a virus spreading through the network.",
        ]),
    ),
    "cookie": (
        ("biscuit", "cooking", [
            "She baked a cookie with oats and raisins.",
            "The child dunked a cookie in milk.",
            "Each cookie was decorated with icing.",
            "He ate a warm cookie straight from the oven.",
            "The bakery sells a giant cookie for a dollar.",
        ]),
        ("web", "technology", [
            "The website stores a cookie to remember your login.",
            "Clear the cookie to reset your preferences.",
            "The browser blocked a tracking cookie.",
            "A session cookie expires when you close the browser.",
            "The privacy banner asks before setting a cookie.",
        ]),
    ),
    "cell": (
        ("biology", "health", [
            "The red blood cell carries oxygen.",
            "A cancer cell divides without control.",
            "The scientist looked at the cell under the microscope.",
            "Each cell in the body contains DNA.",
            "The immune cell attacked the bacteria.",
        ]),
        ("battery", "technology", [
            "The solar cell converts light into electricity.",
            "The battery cell overheated during charging.",
            "Each lithium cell in the pack is tested at the factory.",
            "A damaged cell can make the phone battery swell.",
            "The fuel cell powers the bus with hydrogen.",
        ]),
    ),
}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def rows() -> list[dict[str, str]]:
    """The corpus rows (text, topic, keyword, sense), shuffled with a fixed seed."""
    rng = random.Random(SEED)
    out: list[dict[str, str]] = []
    for topic, (subjects, predicates) in TOPICS.items():
        pairs = [(s, p) for s in subjects for p in predicates]
        for subject, predicate in rng.sample(pairs, PER_TOPIC):
            out.append({"text": f"{subject} {predicate}", "topic": topic, "keyword": "", "sense": ""})
    for keyword, senses in POLYSEMY.items():
        for sense, topic, sentences in senses:
            for text in sentences:
                if keyword not in _words(text):
                    raise AssertionError(f"{text!r} lacks the word {keyword!r}")
                out.append({"text": text, "topic": topic, "keyword": keyword, "sense": sense})
    generic = [r["text"] for r in out if not r["keyword"]]
    for text in generic:  # keep labels honest: generic sentences hold no polysemous keyword
        clash = _words(text) & set(POLYSEMY)
        if clash:
            raise AssertionError(f"{text!r} holds {clash}")
    if len({r["text"] for r in out}) != len(out):
        raise AssertionError("duplicate sentences")
    rng.shuffle(out)
    return out


def render() -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["text", "topic", "keyword", "sense"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows())
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file differs")
    parser.add_argument("--out", type=Path, default=TARGET)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        same = args.out.exists() and args.out.read_text(encoding="utf-8") == text
        sys.stderr.write(f"{args.out}: {'up to date' if same else 'differs, rerun the script'}\n")
        return 0 if same else 1
    args.out.write_text(text, encoding="utf-8")
    sys.stderr.write(f"wrote {len(text.splitlines()) - 1} rows to {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
