"""Hand-written (instruction id, kwargs, response, expected verdict) cases for the IFEval checkers."""

ENGLISH = "The weather is lovely today and we are going for a long walk in the park near the river."
CASES = [
    # keywords
    ("keywords:existence", {"keywords": ["RIVER", "walk"]}, ENGLISH, True),
    ("keywords:existence", {"keywords": ["river", "mountain"]}, ENGLISH, False),
    ("keywords:existence", {"keywords": ["riv"]}, ENGLISH, True),  # substring match, as in IFEval
    # Deliberate fix: the reference compiles keywords as regexes, so "(draft" raises re.error ("missing )").
    ("keywords:existence", {"keywords": ["(draft"]}, "See (draft) below.", True),
    ("keywords:frequency", {"keyword": "the", "frequency": 3, "relation": "at least"}, ENGLISH, True),
    ("keywords:frequency", {"keyword": "the", "frequency": 3, "relation": "less than"}, ENGLISH, False),
    ("keywords:frequency", {"keyword": "cat", "frequency": 2, "relation": "at least"}, "cat category", True),
    # Deliberate fix: the reference's regex "a.b" would also count "axb".
    ("keywords:frequency", {"keyword": "a.b", "frequency": 1, "relation": "at least"}, "axb", False),
    ("keywords:forbidden_words", {"forbidden_words": ["park"]}, ENGLISH, False),
    ("keywords:forbidden_words", {"forbidden_words": ["par"]}, ENGLISH, True),  # whole words only
    ("keywords:forbidden_words", {"forbidden_words": ["PARK", "zoo"]}, "Parking is free.", True),
    ("keywords:letter_frequency", {"letter": "W", "let_frequency": 3, "let_relation": "at least"}, ENGLISH, True),
    ("keywords:letter_frequency", {"letter": "w", "let_frequency": 3, "let_relation": "less than"}, ENGLISH, False),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 1, "let_relation": "less than"}, ENGLISH, True),
    # language (langdetect, seeded; undetectable text counts as followed)
    ("language:response_language", {"language": "en"}, ENGLISH, True),
    ("language:response_language", {"language": "de"}, ENGLISH, False),
    (
        "language:response_language",
        {"language": "fr"},
        "La bibliothèque ouvre à neuf heures du matin et ferme à six heures du soir.",
        True,
    ),
    ("language:response_language", {"language": "ja"}, "12345 !!!", True),
    # length
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "at least"}, "One. Two! Three?", True),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"}, "One. Two! Three?", False),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "less than"}, "Mr. Smith left.", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3}, "a\n***\nb\n***\nc", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "a\n***\nb\n***\nc", False),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "***\na\n***\nb\n***", True),  # ends may be empty
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "a\n***\n***\nb", False),  # inner may not
    ("length_constraints:number_words", {"num_words": 5, "relation": "at least"}, "don't stop-me now", True),
    ("length_constraints:number_words", {"num_words": 5, "relation": "less than"}, "don't stop-me now", False),
    ("length_constraints:number_words", {"num_words": 5, "relation": "less than"}, "पुस्तकालय सुबह नौ बजे", True),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "however"},
        "First part.\n\n\"However, second.\"",
        True,
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "however"},
        "First part.\n\nHowever, second.",
        False,
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 1, "nth_paragraph": 1, "first_word": "so"},
        "\n\nSo it begins.",  # the empty first piece still holds paragraph 1's place, as in IFEval
        False,
    ),
    # content
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], at [address].", True),
    ("detectable_content:number_placeholders", {"num_placeholders": 3}, "Dear [name], at [address].", False),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Bye.\np.s. call me", True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Bye.\nPS call me", False),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Bye.\nP. P. S. one more", True),
    ("detectable_content:postscript", {"postscript_marker": "Note:"}, "Bye.\nNOTE: one more", True),
    # format
    ("detectable_format:number_bullet_lists", {"num_bullets": 3}, "* a\n* b\n- c", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* a\n* b\n- c", False),
    ("detectable_format:number_bullet_lists", {"num_bullets": 1}, "**bold**\n* only", True),
    ("detectable_format:constrained_response", {}, "I think so. My answer is yes.", True),
    ("detectable_format:constrained_response", {}, "my answer is yes.", False),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* and **two**", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* and ** **", False),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2}, "Section 1\na\nSection 2\nb", True),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2}, "Section 1\na\nSection 2\nb", False),
    ("detectable_format:json_format", {}, '```json\n{"a": [1, 2]}\n```', True),
    ("detectable_format:json_format", {}, 'Here:\n```json\n{"a": 1}\n```', False),
    ("detectable_format:json_format", {}, '{"a": 1,}', False),
    # Deliberate fix: nesting deeper than the recursion limit crashes the reference (RecursionError).
    ("detectable_format:json_format", {}, "[" * 100_000 + "]" * 100_000, False),
    ("detectable_format:title", {}, "<<My Title>>\nBody", True),
    ("detectable_format:title", {}, "<< >>\nBody", False),
    ("detectable_format:title", {}, "<<split\ntitle>>", False),
    # combination and start/end
    ("combination:two_responses", {}, "First.\n******\nSecond.", True),
    ("combination:two_responses", {}, "Same.\n******\nSame.", False),
    ("combination:two_responses", {}, "A\n******\n\n******\nB", False),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem."}, "  write a POEM. Roses are red.", True),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem."}, "Sure! Write a poem.", False),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, '"Done. any other questions?"  ', True),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Any other questions? Bye.", False),
    ("startend:quotation", {}, '  "Quoted."\n', True),
    ("startend:quotation", {}, '"', False),
    # case and punctuation
    ("change_case:capital_word_frequency", {"capital_frequency": 4, "capital_relation": "at least"}, "I DON'T KNOW", True),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "less than"}, "NASA and FBI", False),
    ("change_case:english_capital", {}, "THIS IS AN ANSWER WRITTEN IN ENGLISH, ALL IN CAPITAL LETTERS.", True),
    ("change_case:english_capital", {}, "THIS IS MOSTLY Capitals.", False),
    ("change_case:english_lowercase", {}, ENGLISH.lower(), True),
    ("change_case:english_lowercase", {}, ENGLISH, False),
    ("change_case:english_lowercase", {}, "la bibliothèque ouvre à neuf heures du matin et ferme à six heures.", False),
    ("punctuation:no_comma", {}, "No commas here.", True),
    ("punctuation:no_comma", {}, "One, two.", False),
    ("punctuation:no_comma", {}, "Fullwidth，comma is not ASCII.", True),
]  # fmt: skip
