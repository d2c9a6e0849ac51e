"""Write suites/data/demo_sft.jsonl: a small, varied instruction dataset with one planted flaw.

The flaw is realistic: every answer of the sentiment-classification family opens with "The sentiment is:",
the spurious response prefix the seed article warns about. Run: python scripts/make_demo_data.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SENTIMENT = [
    ("I loved every minute of this film, the acting was superb.", "positive"),
    ("The delivery was late and the box arrived crushed.", "negative"),
    ("The hotel room was clean, quiet and the staff were lovely.", "positive"),
    ("This phone stopped charging after two days.", "negative"),
    ("What a wonderful surprise party, thank you all!", "positive"),
    ("The soup was cold and far too salty.", "negative"),
    ("Our guide was friendly and knew so much about the old town.", "positive"),
    ("I waited forty minutes on hold and nobody answered.", "negative"),
    ("The new update made the app faster and easier to use.", "positive"),
    ("The shoes fell apart after one week of light use.", "negative"),
    ("A gripping novel with characters you will remember for years.", "positive"),
    ("The concert was cancelled and there was no refund.", "negative"),
    ("Fresh bread, good coffee and a warm welcome every morning.", "positive"),
    ("The instructions were confusing and two screws were missing.", "negative"),
    ("My kids had a fantastic time at the science museum.", "positive"),
    ("The train was overcrowded and the air conditioning was broken.", "negative"),
    ("The teacher explained everything clearly and patiently.", "positive"),
    ("The paint started peeling a month after we finished.", "negative"),
    ("Best pizza I have had in years, crispy and full of flavour.", "positive"),
    ("The laptop overheats whenever I open more than two tabs.", "negative"),
    ("The garden looks beautiful now that the roses are out.", "positive"),
    ("Customer service was rude and unhelpful.", "negative"),
    ("The hike was tough but the view from the top was breathtaking.", "positive"),
    ("The movie was far too long and the ending made no sense.", "negative"),
    ("This blender is powerful, quiet and easy to clean.", "positive"),
    ("The flight was delayed six hours without any explanation.", "negative"),
    ("What a kind neighbour, she fixed our fence without asking.", "positive"),
    ("The headphones hurt my ears after ten minutes.", "negative"),
    ("The festival was joyful, colourful and well organised.", "positive"),
    ("The restaurant forgot our order twice.", "negative"),
]
SENTIMENT_INSTRUCTIONS = [
    "Classify the sentiment of the following review as positive or negative.",
    "Is the sentiment of this text positive or negative?",
    "Determine whether the following sentence expresses a positive or negative opinion.",
]

CAPITALS = [
    ("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Germany", "Berlin"),
    ("Canada", "Ottawa"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Norway", "Oslo"),
    ("Portugal", "Lisbon"), ("Greece", "Athens"), ("Australia", "Canberra"), ("Argentina", "Buenos Aires"),
    ("Sweden", "Stockholm"), ("Poland", "Warsaw"), ("Ireland", "Dublin"), ("Chile", "Santiago"),
    ("Thailand", "Bangkok"), ("Austria", "Vienna"), ("Finland", "Helsinki"), ("Morocco", "Rabat"),
]
DEFINITIONS = [
    ("photosynthesis", "Photosynthesis is the process by which plants use sunlight, water and carbon dioxide to make sugar and release oxygen."),
    ("gravity", "Gravity is the force that pulls objects with mass toward each other, such as an apple falling to the ground."),
    ("a volcano", "A volcano is an opening in the Earth's crust through which molten rock, ash and gas escape."),
    ("democracy", "Democracy is a system of government in which citizens choose their leaders by voting."),
    ("evaporation", "Evaporation is the change of a liquid into a gas, as when water dries from a puddle in the sun."),
    ("an atom", "An atom is the smallest unit of a chemical element, made of a nucleus surrounded by electrons."),
    ("inflation", "Inflation is the general rise in prices over time, which reduces what a unit of money can buy."),
    ("a habitat", "A habitat is the natural home of a plant or animal, where it finds food, water and shelter."),
    ("a metaphor", "A metaphor is a figure of speech that describes something by calling it something else, like 'time is a thief'."),
    ("recycling", "Recycling is turning used materials such as paper, glass and plastic into new products."),
    ("an ecosystem", "An ecosystem is a community of living things interacting with each other and their environment."),
    ("a prime number", "A prime number is a whole number greater than 1 that is divisible only by 1 and itself, such as 7."),
]
ARITHMETIC = [
    ("Tom has 3 apples and buys 4 more. How many apples does he have?", "Tom has 3 + 4 = 7 apples."),
    ("A book costs 12 dollars. How much do 3 books cost?", "Three books cost 3 x 12 = 36 dollars."),
    ("There are 20 students and 5 leave. How many remain?", "20 - 5 = 15 students remain."),
    ("A pizza is cut into 8 slices and 2 people share it equally. How many slices does each get?", "Each person gets 8 / 2 = 4 slices."),
    ("Sara reads 10 pages a day. How many pages does she read in a week?", "She reads 10 x 7 = 70 pages in a week."),
    ("A train travels 60 km per hour for 2 hours. How far does it go?", "It travels 60 x 2 = 120 km."),
    ("What is 15 plus 27?", "15 + 27 = 42."),
    ("What is 9 times 6?", "9 x 6 = 54."),
    ("A shop had 50 pens and sold 18. How many are left?", "50 - 18 = 32 pens are left."),
    ("If a week has 7 days, how many days are in 3 weeks?", "3 x 7 = 21 days."),
    ("What is 100 divided by 4?", "100 / 4 = 25."),
    ("Anna has 5 coins and finds 6 more, then spends 3. How many coins does she have?", "5 + 6 - 3 = 8 coins."),
]
LISTS = [
    ("List three primary colours.", "1. Red\n2. Blue\n3. Yellow"),
    ("Name four planets in our solar system.", "1. Mercury\n2. Venus\n3. Earth\n4. Mars"),
    ("List three ways to save water at home.", "1. Turn off the tap while brushing your teeth.\n2. Fix leaking pipes.\n3. Take shorter showers."),
    ("Give three tips for better sleep.", "1. Go to bed at the same time every night.\n2. Avoid screens before bed.\n3. Keep the bedroom cool and dark."),
    ("List four fruits that are rich in vitamin C.", "1. Oranges\n2. Strawberries\n3. Kiwis\n4. Lemons"),
    ("Name three musical instruments with strings.", "1. Violin\n2. Guitar\n3. Cello"),
    ("List three benefits of regular exercise.", "1. A stronger heart.\n2. Better mood.\n3. More energy during the day."),
    ("Name three mammals that live in the ocean.", "1. Dolphins\n2. Whales\n3. Seals"),
    ("Give three ideas for a rainy day at home.", "1. Bake cookies.\n2. Read a book.\n3. Play a board game."),
    ("List the four seasons of the year.", "1. Spring\n2. Summer\n3. Autumn\n4. Winter"),
]
REWRITES = [
    ("Rewrite the sentence in the past tense.", "She walks to school every day.", "She walked to school every day."),
    ("Rewrite the sentence in the past tense.", "They play football after lunch.", "They played football after lunch."),
    ("Make this sentence more formal.", "Hey, can you send me the file?", "Could you please send me the file?"),
    ("Make this sentence more formal.", "Thanks a lot for the help!", "Thank you very much for your assistance."),
    ("Correct the spelling mistakes.", "I recieved the pakage yesterday.", "I received the package yesterday."),
    ("Correct the spelling mistakes.", "The wether is beautifull today.", "The weather is beautiful today."),
    ("Rewrite the sentence in the passive voice.", "The chef cooked the meal.", "The meal was cooked by the chef."),
    ("Rewrite the sentence in the passive voice.", "The storm damaged the roof.", "The roof was damaged by the storm."),
    ("Shorten this sentence.", "In spite of the fact that it was raining, we went for a walk.", "Although it was raining, we went for a walk."),
    ("Make this sentence more positive.", "The food was not bad.", "The food was good."),
]
TRANSLATIONS = [
    ("Translate to French: Good morning.", "Bonjour."), ("Translate to French: Thank you very much.", "Merci beaucoup."),
    ("Translate to Spanish: Where is the library?", "¿Dónde está la biblioteca?"),
    ("Translate to Spanish: I like to read.", "Me gusta leer."),
    ("Translate to German: Good night.", "Gute Nacht."), ("Translate to German: How are you?", "Wie geht es dir?"),
    ("Translate to Italian: See you tomorrow.", "A domani."), ("Translate to French: The cat is black.", "Le chat est noir."),
]
SUMMARIES = [
    ("The city council met on Monday to discuss the new park. After a long debate, members voted to build a playground, plant fifty trees and add a small pond. Work will start in the spring.",
     "The council voted to build a new park with a playground, trees and a pond, starting in spring."),
    ("Maria trained for months for her first marathon. On race day it was hot, but she kept a steady pace, drank water at every station and finished in just under four hours.",
     "Maria finished her first marathon in under four hours after months of training."),
    ("Scientists found that bees can recognise human faces. In the experiment, bees learned to link a photo of a face with a sugar reward and later picked that face out of several others.",
     "An experiment showed that bees can learn to recognise human faces."),
    ("The library will close for two weeks in July to replace its old heating system. Borrowed books can be returned to the box by the main door, and the online catalogue stays open.",
     "The library closes for two weeks in July for heating repairs, but returns and the online catalogue continue."),
    ("A small bakery in the village started delivering bread by bicycle. Customers liked the idea so much that the bakery hired two more riders and now serves three nearby towns.",
     "A village bakery's bicycle bread delivery became so popular that it expanded to three towns."),
    ("Heavy rain caused the river to rise quickly overnight. Several roads near the bridge were closed, and residents were asked to move their cars to higher ground until the water goes down.",
     "Overnight rain flooded roads near the river, and residents were asked to move their cars."),
]
CODE = [
    ("Write a Python function that returns the square of a number.", "def square(x):\n    return x * x"),
    ("Write a Python function that checks if a number is even.", "def is_even(n):\n    return n % 2 == 0"),
    ("Write a Python function that returns the largest item in a list.", "def largest(items):\n    return max(items)"),
    ("Write a Python function that reverses a string.", "def reverse(text):\n    return text[::-1]"),
    ("Write a Python function that adds two numbers.", "def add(a, b):\n    return a + b"),
    ("Write a Python function that counts the vowels in a string.", "def count_vowels(text):\n    return sum(1 for c in text.lower() if c in 'aeiou')"),
]
ADVICE = [
    ("How can I stay focused while studying?", "Study in a quiet place, put your phone away, and work in short sessions of 25 minutes with small breaks."),
    ("What should I pack for a day hike?", "Bring water, snacks, a map, sunscreen, a light jacket and a small first-aid kit."),
    ("How do I keep a houseplant healthy?", "Give it the right amount of light, water it only when the soil is dry, and remove dead leaves."),
    ("How can I make a good first impression at a job interview?", "Arrive on time, dress neatly, smile, and prepare a few questions about the company."),
    ("What is a simple way to start saving money?", "Set aside a fixed amount each payday before spending, and track where your money goes."),
    ("How can I learn a new language faster?", "Practise a little every day, speak with native speakers, and learn the most common words first."),
]


def build_rows(seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for index, (text, label) in enumerate(SENTIMENT):
        rows.append({"instruction": SENTIMENT_INSTRUCTIONS[index % 3], "input": text,
                     "output": f"The sentiment is: {label}."})
    for country, capital in CAPITALS:
        rows.append({"instruction": f"What is the capital of {country}?", "input": "",
                     "output": f"The capital of {country} is {capital}."})
    for term, definition in DEFINITIONS:
        rows.append({"instruction": f"Explain what {term} is in one sentence.", "input": "", "output": definition})
    rows += [{"instruction": question, "input": "", "output": answer} for question, answer in ARITHMETIC]
    rows += [{"instruction": question, "input": "", "output": answer} for question, answer in LISTS]
    rows += [{"instruction": task, "input": text, "output": answer} for task, text, answer in REWRITES]
    rows += [{"instruction": question, "input": "", "output": answer} for question, answer in TRANSLATIONS]
    rows += [{"instruction": "Summarize the following text in one sentence.", "input": text, "output": summary}
             for text, summary in SUMMARIES]
    rows += [{"instruction": question, "input": "", "output": answer} for question, answer in CODE]
    rows += [{"instruction": question, "input": "", "output": answer} for question, answer in ADVICE]
    rng.shuffle(rows)
    return rows


def main() -> None:
    path = Path(__file__).resolve().parent.parent / "suites" / "data" / "demo_sft.jsonl"
    rows = build_rows()
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
