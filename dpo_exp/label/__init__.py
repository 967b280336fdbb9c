"""Human preference labels: `python -m dpo_exp.label`, one module per job.

- `schema`: the command's keys (`label.*`, conf/label.yaml) and their checks.
- `items`: the pairs to label, read from any preference file dpo_exp reads (`dpo_exp.data`), and the
  digest that ties a label database to that file.
- `store`: the label database (SQLAlchemy; a SQLite file in WAL mode by default, or any URL such as
  PostgreSQL): one row per item x annotator, with the sides shown, timestamps and the app version;
  who labels which item next (`label.overlap`); every submission committed before the page hears back.
- `app`: the Gradio page (pairs mode) and a small JSON API beside it, served on `label.host:label.port`.
- `arena`: arena mode (`label.mode=arena`): two models answer the annotators' prompts, sides shuffled,
  names shown after the vote; each vote a new pair in the store.
- `export`: majority votes into a preference file in the canonical format (with votes, annotators,
  agreement and a `dimensions` block), and the agreement report (percent agreement, Cohen's kappa,
  Krippendorff's alpha, per dimension too).
- `versus`: a judge plug-in against the people: both orders, agreement with the majority and with
  each annotator, position consistency, a confusion table.
- `judge`: `judge=human`, a judge plug-in answering from a label database (so `python -m dpo_exp.build`
  turns human labels into pairs).
- `__main__`: the command (serve / export / judge, `label.action`), the one module nothing imports.

Importing this package is cheap: Gradio, SQLAlchemy and the statistics libraries load where they are used.
"""
