"""SAGE sky cameras: optical JPGs and thermal CSVs -> pairs -> arrays -> two-branch VICReg -> embedding evaluation."""
