from cauldron.virtual import ReadOnlyTableDocument, RealTable


class LoreDocumentChunk(ReadOnlyTableDocument):
	real_table = RealTable(
		relation="lore.document_chunks",
		name="id::text",
		columns={
			"document_id": "document_id",
			"chunk_index": "chunk_index",
			"has_embedding": "(embedding IS NOT NULL)::int",
			"created_at": "created_at",
			"content": "content",
			"metadata": "metadata",
		},
		time_column="created_at",
		written_by="Lore's indexing (cauldron.pg.vectors.replace_document_chunks)",
	)
