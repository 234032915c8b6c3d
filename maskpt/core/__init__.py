"""The ground floor of maskpt: what every other package builds on.

- `records`: `Document`, `Segment`, `MaskedSegment`, `Skip`;
- `tokenizer`: loading, training and fingerprinting tokenizers, text -> `Segment`;
- `config`: config dataclasses from YAML plus `key=value` overrides;
- `cli_args`: the one command line of every job (`--config FILE`, flags, overrides);
- `errors`: `UserError`, the errors that become one-line messages;
- `seeding`: every rule that turns a seed into a random stream;
- `batching`: padding token-id lists into tensors;
- `io`: atomic writes, checksums, JSON files;
- `resources`: files bundled with the package.

Nothing here imports `policies`, `preprocess`, `train` or the commands.
"""
