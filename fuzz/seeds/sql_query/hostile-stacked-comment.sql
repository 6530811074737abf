SELECT 1 /* ; */ ; DROP TABLE processes --
