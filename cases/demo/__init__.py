"""Demo data for the fictional county-level city 宁川市: data files and the seeder."""
