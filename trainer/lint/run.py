"""Run every lint check on a dataset rendered and tokenised exactly as `sfteval train` would."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sfteval.tokenization import IGNORE_INDEX
from sfteval.trainer.data import load_data_files
from sfteval.trainer.encode import EncodedRow, EncodeSettings, encode_rows
from sfteval.trainer.lint import data_checks
from sfteval.trainer.lint.config import LintConfig
from sfteval.trainer.lint.mask_checks import MaskContext, RowCheck, check_row, mask_context
from sfteval.trainer.lint.results import Level, LintFinding, LintReport, ShownRow, finding
from sfteval.trainer.resources import load_tokenizer, resolve_model_path, resolve_template
from sfteval.trainer.summaries import trained_responses

# Per-row checks: level and what the finding means ({terminator} and {max_seq_len} are filled in).
ROW_CHECKS: dict[str, tuple[Level, str]] = {
    "no_trained_tokens": (
        "error",
        "rows with no trained tokens after templating/truncation (dropped from training)",
    ),
    "empty_response": ("error", "empty responses: the model is taught to stop without answering"),
    "prompt_leak": ("error", "trained tokens lie wholly in prompt or role-header text"),
    "labels_misaligned": (
        "error",
        "trained labels differ from the input ids at their position (labels pre-shifted?)",
    ),
    "first_response_token_masked": ("error", "the first token of a response is not trained"),
    "terminator_missing": ("error", "a trained response does not end with the terminator {terminator!r}"),
    "terminator_not_trained": (
        "error",
        "the terminator {terminator!r} is masked: the model never learns to stop",
    ),
    "double_bos": ("error", "BOS appears more often than the template writes it (data already templated?)"),
    "duplicated_eos": (
        "error",
        "two end-of-turn/EOS tokens in a row (the text already ends with the terminator?)",
    ),
    "truncated_response": (
        "error",
        "rows longer than --max-seq-len {max_seq_len} are cut (keep_start): the response loses its terminator",
    ),
    "dropped_overlong": (
        "warning",
        "rows longer than --max-seq-len {max_seq_len} will be dropped from training",
    ),
    "marker_in_response": (
        "error",
        "responses contain template markers or role headers the model will learn to write",
    ),
    "special_token_in_content": (
        "warning",
        "message text contains special-token strings (they tokenise as specials)",
    ),
    "boundary_merge": (
        "warning",
        "a token spans the prompt/response boundary; it is trained (masks follow characters), "
        "so it carries prompt characters into the loss",
    ),
}
LEVEL_ORDER = {"error": 0, "warning": 1, "info": 2}


def run_lint(config: LintConfig, show: int = 0) -> LintReport:
    """Load, encode and check the data; findings sorted errors first; `show` rows kept for display."""
    conversations = [c for data_file in load_data_files(config.data) for c in data_file.conversations]
    model_path = resolve_model_path(config.model)
    tokenizer = load_tokenizer(model_path)
    template = resolve_template(config.template, tokenizer)
    settings = EncodeSettings(config.train_on, config.max_seq_len, config.truncation, config.mask_terminator)
    rows, _ = encode_rows(tokenizer, template, conversations, settings)
    context = mask_context(tokenizer, template, settings)
    checks = [check_row(context, row) for row in rows]
    responses = trained_responses(conversations, config.train_on)
    opening_found, opening_table = data_checks.opening_findings(responses)
    phrase_found, phrase_table = data_checks.stock_phrase_findings(responses)
    findings = [
        *_row_findings(context, rows, checks),
        *data_checks.tokenizer_findings(tokenizer, template, model_path),
        *data_checks.duplicate_findings(conversations),
        *opening_found,
        *phrase_found,
    ]
    lengths = {
        "prompt": [check.prompt_tokens for check in checks],
        "response": [check.response_tokens for check in checks],
        "row": [check.total_tokens for check in checks],
    }
    tables = [
        data_checks.length_table(lengths, config.max_seq_len),
        opening_table,
        phrase_table,
        data_checks.coverage_table(conversations),
    ]
    present = sorted((f for f in findings if f is not None), key=lambda f: (LEVEL_ORDER[f.level], f.check))
    return LintReport(
        model=str(model_path), template=template.name, rows=len(rows), findings=present, tables=tables,
        shown=[shown_row(context, row) for row in _rows_to_show(rows, checks)[:show]],
    )  # fmt: skip


def _row_findings(
    context: MaskContext, rows: Sequence[EncodedRow], checks: Sequence[RowCheck]
) -> list[LintFinding | None]:
    by_check: dict[str, list[str]] = defaultdict(list)
    for row, check in zip(rows, checks, strict=True):
        if row.example is not None and row.example.num_trained == 0:
            by_check["no_trained_tokens"].append(row.conversation.id)
        for problem in check.problems:
            by_check[problem].append(row.conversation.id)
    fill = {"terminator": context.template.terminator, "max_seq_len": context.settings.max_seq_len}
    return [
        finding(name, level, by_check[name], message.format(**fill))
        for name, (level, message) in ROW_CHECKS.items()
    ]


def _rows_to_show(rows: Sequence[EncodedRow], checks: Sequence[RowCheck]) -> list[EncodedRow]:
    """Rows with problems first (they are the ones worth looking at), then the rest, in file order."""
    return [row for _, row in sorted(zip(checks, rows, strict=True), key=lambda pair: not pair[0].problems)]


def shown_row(context: MaskContext, row: EncodedRow) -> ShownRow:
    """A row's tokens decoded one by one with their trained flags (as trained: truncated/dropped rows in full)."""
    tokens = row.example or row.full
    pieces = [
        (
            context.tokenizer.decode([token], skip_special_tokens=False, clean_up_tokenization_spaces=False),
            label != IGNORE_INDEX,
        )
        for token, label in zip(tokens.input_ids, tokens.labels, strict=True)
    ]
    return ShownRow(
        id=row.conversation.id, pieces=pieces, trained_tokens=tokens.num_trained, total_tokens=len(pieces)
    )
